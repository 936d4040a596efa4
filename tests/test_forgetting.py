"""The core phenomenon on the default data, over several seeds (slow)."""

import numpy as np
import pytest

from forgetbench.run import run

SMALL = ["data.samples_per_shard=800", "data.heldout_per_shard=300", "train.verbose=0"]


@pytest.mark.slow
def test_cross_shard_beats_sequential_which_forgets(tiny_cfg, tmp_path):
    from conftest import compose_config

    acc = {"sequential": [], "cross_shard": []}
    forgetting = []
    for seed in range(3):
        for strategy in acc:
            cfg = compose_config(
                [
                    *SMALL,
                    f"strategy={strategy}",
                    f"seed={seed}",
                    f"paths.data_cache={tmp_path / 'data'}",
                ]
            )
            summary = run(cfg, tmp_path / f"{strategy}-{seed}")
            acc[strategy].append(summary["metrics"]["acc"])
            if strategy == "sequential":
                forgetting.append(summary["metrics"]["forgetting"])
    assert np.mean(acc["cross_shard"]) > np.mean(acc["sequential"]) + 0.2
    assert min(acc["cross_shard"]) > max(acc["sequential"])
    assert np.mean(forgetting) > 0.25


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["replay", "ewc"])
def test_replay_and_ewc_reduce_sequential_forgetting(tmp_path, strategy):
    from conftest import compose_config

    forgetting = {"sequential": [], strategy: []}
    for seed in range(3):
        for name in forgetting:
            cfg = compose_config(
                [
                    *SMALL,
                    f"strategy={name}",
                    f"seed={seed}",
                    f"paths.data_cache={tmp_path / 'data'}",
                ]
            )
            forgetting[name].append(run(cfg, tmp_path / f"{name}-{seed}")["metrics"]["forgetting"])
    assert np.mean(forgetting[strategy]) < np.mean(forgetting["sequential"]) - 0.1
    assert all(s < q for s, q in zip(forgetting[strategy], forgetting["sequential"], strict=True))
