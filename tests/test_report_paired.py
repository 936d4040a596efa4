import pandas as pd
import pytest

from forgetbench.report import load_tables, report


def test_report_pairs_strategies_over_shared_seeds(fake_sweep, tmp_path):
    out = tmp_path / "report"
    report([fake_sweep], out)
    paired = load_tables(out)["paired"]
    acc = paired[paired["metric"] == "acc"].iloc[0]
    runs = pd.read_parquet(out / "runs.parquet")
    runs = runs[runs["status"] == "completed"].pivot_table(
        index="seed", columns="strategy", values="acc"
    )
    assert {acc["strategy_a"], acc["strategy_b"]} == {"sequential", "joint"} and acc["n"] == 2
    a, b = runs[acc["strategy_a"]], runs[acc["strategy_b"]]
    assert acc["mean_diff"] == pytest.approx((a - b).mean())
    assert "p_holm" in (out / "paired.md").read_text()


def test_report_ranks_strategies_over_datasets(tmp_path, write_fake_run):
    sweep = tmp_path / "sweep"
    scores = {"replay": 0.9, "ewc": 0.6, "sequential": 0.3}
    for d, dataset in enumerate(["d1", "d2", "d3", "d4"]):
        for strategy, acc in scores.items():
            for seed in (0, 1):
                folder = sweep / f"{dataset}-{strategy}-{seed}"
                run_id = f"{dataset}-{strategy}-{seed}"
                metrics = {"acc": acc + 0.01 * d + 0.001 * seed}
                write_fake_run(
                    folder, strategy, seed, dataset=dataset, run_id=run_id, metrics=metrics
                )
                curves = pd.read_parquet(folder / "curves.parquet")
                curves = curves.assign(dataset=dataset, run_id=run_id)
                curves.to_parquet(folder / "curves.parquet", index=False)
    out = tmp_path / "report"
    report([sweep], out)
    ranking = load_tables(out)["ranking"]
    acc = ranking[ranking["metric"] == "acc"].set_index("strategy")
    assert acc["mean_rank"].to_dict() == {"replay": 1.0, "ewc": 2.0, "sequential": 3.0}
    assert acc["blocks"].iloc[0] == 4
    assert (out / "critical_difference.png").exists()
