import numpy as np
import pandas as pd
import pytest

from forgetbench.report import markdown, mean_ci, summary_table


def test_mean_ci_is_student_t_interval():
    mean, half = mean_ci(pd.Series([0.5, 0.6, 0.7]))
    assert mean == pytest.approx(0.6)
    assert half == pytest.approx(4.302653 * 0.1 / np.sqrt(3), rel=1e-5)
    mean, half = mean_ci(pd.Series([0.4]))
    assert mean == pytest.approx(0.4) and np.isnan(half)


def test_summary_splits_by_varying_config_and_orders_strategies():
    rows = []
    for strategy in ("cross_shard", "sequential"):
        for k in (1, 4):
            for seed in range(3):
                acc = {"sequential": 0.5, "cross_shard": 0.9}[strategy] + 0.01 * k + 0.01 * seed
                rows.append(
                    {
                        "dataset": "d",
                        "strategy": strategy,
                        "remainder": "weighted",
                        "seed": seed,
                        "accumulation_steps": k,
                        "batch_size": 32,
                        "epochs": 1,
                        "learning_rate": 0.1,
                        "acc": acc,
                        "forgetting": 0.1,
                        "bwt": -0.1,
                        "fwt": float("nan"),
                    }
                )
    table = summary_table(pd.DataFrame(rows))
    assert table["strategy"].tolist() == ["sequential"] * 2 + ["cross_shard"] * 2
    assert "batch_size" not in table  # constant: not a grouping key
    row = table[(table.strategy == "sequential") & (table.accumulation_steps == 4)].iloc[0]
    assert row["seeds"] == 3
    assert row["acc"] == pytest.approx(0.5 + 0.04 + 0.01)
    text = markdown(table)
    assert text.splitlines()[0].startswith(
        "| dataset | strategy | remainder | accumulation_steps |"
    )
    assert "n/a" in text  # FWT is NaN for every run
    assert "0.550 ± " in text


def test_evaluation_scenario_splits_the_summary_when_it_varies():
    rows = [
        {
            "dataset": "d",
            "strategy": "sequential",
            "remainder": "weighted",
            "scenario": scenario,
            "seed": seed,
            "acc": acc + 0.01 * seed,
            "forgetting": 0.1,
            "bwt": 0.0,
            "fwt": 0.0,
        }
        for scenario, acc in (("class_incremental", 0.2), ("task_incremental", 0.9))
        for seed in range(2)
    ]
    table = summary_table(pd.DataFrame(rows))
    assert table["scenario"].tolist() == ["class_incremental", "task_incremental"]
    assert table["acc"].tolist() == pytest.approx([0.205, 0.905])
