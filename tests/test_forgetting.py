"""The core phenomenon and its mitigations on the default data, over several seeds (slow)."""

import numpy as np
import pytest

from forgetbench.run import run

SMALL = ["data.samples_per_shard=800", "data.heldout_per_shard=300", "train.verbose=0"]
SEEDS = range(3)


@pytest.fixture
def metric_per_seed(tmp_path, compose_config):
    """Returns ``metric_per_seed(strategy, metric)``: on the small default data, per seed."""

    def per_seed(strategy: str, metric: str) -> list[float]:
        values = []
        for seed in SEEDS:
            cfg = compose_config(
                [
                    *SMALL,
                    f"strategy={strategy}",
                    f"seed={seed}",
                    f"paths.data_cache={tmp_path / 'data'}",
                ]
            )
            values.append(run(cfg, tmp_path / f"{strategy}-{seed}")["metrics"][metric])
        return values

    return per_seed


@pytest.mark.slow
def test_cross_shard_beats_sequential_which_forgets(tmp_path, metric_per_seed):
    sequential = metric_per_seed("sequential", "acc")
    cross_shard = metric_per_seed("cross_shard", "acc")
    assert np.mean(cross_shard) > np.mean(sequential) + 0.2
    assert min(cross_shard) > max(sequential)
    assert np.mean(metric_per_seed("sequential", "forgetting")) > 0.25


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["replay", "ewc"])
def test_replay_and_ewc_reduce_sequential_forgetting(tmp_path, strategy, metric_per_seed):
    sequential = metric_per_seed("sequential", "forgetting")
    mitigated = metric_per_seed(strategy, "forgetting")
    assert np.mean(mitigated) < np.mean(sequential) - 0.1
    assert all(m < s for m, s in zip(mitigated, sequential, strict=True))
