"""Evaluation groups: the shard-to-group map and per-group results computed by hand."""

import numpy as np
import pandas as pd
import pytest

from forgetbench.eval import metrics
from forgetbench.eval.groups import contiguous, shard_groups
from forgetbench.run import run

NAMES = [f"day_2023-{1 + k // 3:02d}-{1 + k % 3:02d}" for k in range(7)]


def test_default_is_one_group_per_shard_up_to_the_threshold():
    names = [f"s{k}" for k in range(50)]
    groups = shard_groups(names, None, max_groups=50)
    assert groups.per_shard and groups.names == names
    more = [f"s{k}" for k in range(2001)]
    groups = shard_groups(more, None, max_groups=50)
    assert groups.count == 50
    sizes = np.bincount(groups.of_shard)
    assert sizes.max() - sizes.min() <= 1  # equal shard counts, within one
    assert np.all(np.diff(groups.of_shard) >= 0)  # contiguous
    assert groups.names[0] == f"s0..s{sizes[0] - 1}"
    assert groups.last_shards()[-1] == 2000


def test_contiguous_count_and_names():
    groups = contiguous([f"s{k}" for k in range(7)], 3)
    assert groups.of_shard.tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert groups.names == ["s0..s2", "s3..s4", "s5..s6"]


def test_named_groups_by_month_and_by_mapping():
    groups = shard_groups(NAMES, r"re:_(\d{4}-\d{2})-")
    assert groups.names == ["2023-01", "2023-02", "2023-03"]
    assert groups.of_shard.tolist() == [0, 0, 0, 1, 1, 1, 2]
    # Interleaved groups are numbered by their last shard: "b" ends after "a".
    mapping = {"x": "b", "y": "a", "z": "b", "w": "a", "v": "b"}
    groups = shard_groups(list(mapping), mapping)
    assert groups.names == ["a", "b"] and groups.of_shard.tolist() == [1, 0, 1, 0, 1]


@pytest.mark.parametrize(
    ("spec", "message"),
    [(0, "number of contiguous groups"), ("re:zzz", "day_2023-01-01"), ({"a": 1}, "none for")],
)
def test_invalid_groups_name_the_key(spec, message):
    with pytest.raises(ValueError, match="eval.groups") as err:
        shard_groups(NAMES, spec)
    assert message in str(err.value)


def _by_hand(per_shard: pd.DataFrame, of_shard: list[int]) -> pd.DataFrame:
    """Group accuracy at every point: correct predictions summed over the group's shards."""
    rows = per_shard.assign(
        group=[of_shard[s] for s in per_shard["eval_shard"]],
        correct=per_shard["accuracy"] * per_shard["n_eval"],
    )
    out = rows.groupby(["samples_seen", "group"])[["correct", "n_eval"]].sum().reset_index()
    return out.assign(accuracy=out["correct"] / out["n_eval"]).rename(
        columns={"group": "eval_shard"}
    )


@pytest.mark.parametrize(
    ("spec", "of_shard"),
    [
        ("2", [0, 0, 1, 1]),
        ("{shard_000: a, shard_001: b, shard_002: a, shard_003: b}", [0, 1, 0, 1]),
    ],
)
def test_group_results_equal_sums_of_per_shard_records(tiny_cfg, tmp_path, spec, of_shard):
    cfg = ["data.num_shards=4", "eval.every_samples=100000"]
    per_shard = run(tiny_cfg(*cfg), tmp_path / "shards")
    grouped = run(tiny_cfg(*cfg, f"eval.groups={spec}"), tmp_path / "groups")
    shard_curves = pd.read_parquet(tmp_path / "shards" / "curves.parquet")
    group_curves = pd.read_parquet(tmp_path / "groups" / "curves.parquet")
    expected = _by_hand(shard_curves, of_shard)
    # Evaluated at the groups' ends only (and at init and the end).
    last = [max(k for k, g in enumerate(of_shard) if g == group) for group in (0, 1)]
    bounds = [per_shard["boundaries"][k] for k in last]
    assert grouped["boundaries"] == bounds
    assert sorted(group_curves["samples_seen"].unique()) == [0, *bounds]
    merged = group_curves.merge(expected, on=["samples_seen", "eval_shard"], suffixes=("", "_h"))
    assert len(merged) == len(group_curves) == 2 * 3
    np.testing.assert_allclose(merged["accuracy"], merged["accuracy_h"], rtol=0, atol=1e-12)
    assert (merged["n_eval"] == merged["n_eval_h"]).all()
    # The matrix: R[i, g] read where group i's training ends; metrics from it.
    wide = expected.pivot(index="samples_seen", columns="eval_shard", values="accuracy")
    R = wide.loc[bounds].to_numpy()
    np.testing.assert_allclose(grouped["accuracy_matrix"], R, atol=1e-12)
    np.testing.assert_allclose(grouped["init_accuracy"], wide.loc[0].to_numpy(), atol=1e-12)
    assert grouped["metrics"]["acc"] == pytest.approx(R[-1].mean())
    assert grouped["metrics"]["bwt"] == pytest.approx(R[-1, 0] - R[0, 0])
    assert grouped["metrics"]["forgetting"] == pytest.approx(metrics.forgetting(R))
    assert len(grouped["onset"]) == 2
    # The shard-to-group map is in the run folder.
    table = pd.read_parquet(tmp_path / "groups" / "shards.parquet")
    assert table["group"].tolist() == of_shard
    assert grouped["groups"]["count"] == 2
