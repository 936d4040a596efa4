import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from forgetbench.tune import chosen_overrides, tuned_comparison

BIN = Path(sys.executable).parent


def test_chosen_overrides_are_the_searched_values():
    trial = [
        "search=ewc",
        "data=digits_split",
        "strategy.plugins.ewc.lam=12.5",
        "shard_range=[0,2]",
    ]
    assert chosen_overrides(trial, ["data=digits_split"]) == ["strategy.plugins.ewc.lam=12.5"]


@pytest.mark.parametrize("first_shards", [None, 2])
def test_searches_then_reruns_the_best_over_fresh_seeds(tmp_path, write_fake_run, first_shards):
    commands = []

    def runner(args):
        commands.append(args)
        sweep = Path(next(a for a in args if a.startswith("hydra.sweep.dir=")).partition("=")[2])
        if any(a.startswith("search=") for a in args):
            strategy = next(a for a in args if a.startswith("search=")).partition("=")[2]
            for name, value, status in [
                ("a", 0.6, "completed"),
                ("b", 0.8, "completed"),
                ("c", None, "diverged"),
            ]:
                lr = {"a": 0.01, "b": 0.1, "c": 9.0}[name]
                trial = sweep / name
                write_fake_run(
                    trial / "seed=100",
                    strategy,
                    100,
                    config={"seed": 100, "data": {"validation_fraction": 0.2}},
                )
                (trial / "trial.json").write_text(
                    json.dumps(
                        {
                            "status": status,
                            "value": value,
                            "objective": "val_acc",
                            "direction": "maximize",
                            "reason": None,
                            "overrides": [
                                f"search={strategy}",
                                f"optimizer.learning_rate={lr}",
                                "data=toy",
                            ],
                        }
                    )
                )
        else:
            strategy = next(a for a in args if a.startswith("strategy=")).partition("=")[2]
            for seed in (0, 1, 2):
                write_fake_run(sweep / f"seed={seed}", strategy, seed)

    stale = tmp_path / "out" / "final" / "joint" / "choice-earlier" / "seed=9"
    write_fake_run(stale, "joint", 9)  # final run of an earlier choice: not in the report
    choices = tuned_comparison(
        ["sequential", "joint"],
        tmp_path / "out",
        ["data=toy", "tuning.seeds=[100]"],
        [0, 1, 2],
        first_shards=first_shards,
        runner=runner,
    )
    searches = [c for c in commands if any(a.startswith("search=") for a in c)]
    assert all("tuning.seeds=[100]" in c for c in searches)
    finals = [c for c in commands if any(a.startswith("strategy=") for a in c)]
    assert len(finals) == 2
    for command in finals:
        assert "optimizer.learning_rate=0.1" in command  # the best completed trial
        assert "seed=0,1,2" in command and "data.validation_fraction=0.2" in command
        assert not any(a.startswith(("search=", "tuning.")) for a in command)
        if first_shards is not None:  # Chaudhry et al.: search on the first shards only
            assert "shard_range=[2,null]" in command
    if first_shards is not None:
        assert all("shard_range=[0,2]" in c for c in searches)
    assert choices["configuration"].tolist() == ["optimizer.learning_rate=0.1"] * 2
    assert (choices["trials_completed"] == 2).all() and (choices["trials_failed"] == 1).all()
    report = tmp_path / "out" / "report"
    assert "optimizer.learning_rate=0.1" in (report / "chosen.md").read_text()
    summary = pd.read_csv(report / "summary.csv")
    assert sorted(summary["strategy"]) == ["joint", "sequential"]
    assert (summary["seeds"] == 3).all()


@pytest.mark.slow
def test_tuned_comparison_end_to_end(tmp_path, tiny_overrides):
    out = tmp_path / "tuned"
    cmd = [
        str(BIN / "forgetbench-tune"),
        "--strategies",
        "sequential,ewc",
        "--out",
        str(out),
        "--seeds",
        "0,1",
        "--n-trials",
        "2",
        *tiny_overrides,
        "data.num_shards=2",
        "tuning.seeds=[100]",
        f"paths.data_cache={tmp_path / 'data'}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    chosen = pd.read_csv(out / "report" / "chosen.csv")
    assert chosen["strategy"].tolist() == ["sequential", "ewc"]
    runs = pd.read_parquet(out / "report" / "runs.parquet")
    assert sorted(runs["seed"].unique()) == [0, 1]
    paired = pd.read_parquet(out / "report" / "paired.parquet")
    assert set(paired["strategy_a"]) | set(paired["strategy_b"]) == {"sequential", "ewc"}
