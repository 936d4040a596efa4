import numpy as np
import pandas as pd
import pytest
from scipy import stats

from forgetbench.plots.cd import cliques, plot_critical_difference
from forgetbench.results.paired import (
    comparison_arms,
    critical_difference,
    holm,
    paired_difference,
    paired_table,
    ranking,
    ranking_table,
)


def runs_of(values: dict[str, list[float]], dataset="d", metric="acc") -> pd.DataFrame:
    rows = [
        {"dataset": dataset, "strategy": s, "seed": seed, metric: v}
        for s, vs in values.items()
        for seed, v in enumerate(vs)
    ]
    return pd.DataFrame(rows)


def test_holm_step_down_by_hand():
    # sorted 0.01, 0.03, 0.04 times 3, 2, 1 -> 0.03, 0.06, 0.04 -> monotone 0.03, 0.06, 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])  # capped at 1
    np.testing.assert_allclose(holm([0.02]), [0.02])


def test_clear_winner_known_t_test_and_interval():
    a, b = [0.9, 0.8, 0.85], [0.5, 0.45, 0.5]  # d = 0.4, 0.35, 0.35
    r = paired_difference(a, b)
    sd = np.std([0.4, 0.35, 0.35], ddof=1)
    t = (0.35 + 0.05 / 3) / (sd / np.sqrt(3))
    assert r["mean_diff"] == pytest.approx(0.36666666)
    assert r["p"] == pytest.approx(1 - t / np.sqrt(t**2 + 2))  # two-sided p of t with 2 df
    half = 4.302652729911275 * sd / np.sqrt(3)  # t_0.975 with 2 df
    assert (r["ci95_low"], r["ci95_high"]) == pytest.approx(
        (0.3667 - half, 0.3667 + half), abs=1e-4
    )


def test_table_winner_significant_and_tie_not():
    runs = runs_of(
        {
            "replay": [0.90, 0.92, 0.91, 0.93, 0.90],
            "ewc": [0.60, 0.61, 0.59, 0.62, 0.60],
            "si": [0.60, 0.61, 0.59, 0.62, 0.60],  # the same as ewc: a tie
        }
    )
    table = paired_table(runs, ["dataset"], ["acc"]).set_index(["strategy_a", "strategy_b"])
    win = table.loc[("replay", "ewc")]
    assert win["mean_diff"] == pytest.approx(0.308) and win["ci95_low"] > 0
    assert win["significant"] and win["p_holm"] == pytest.approx(3 * win["p"])  # smallest of 3
    tie = table.loc[("ewc", "si")]
    assert tie["mean_diff"] == 0 and tie["p"] == 1.0 and not tie["significant"]
    assert tie["ci95_low"] == tie["ci95_high"] == 0
    assert (table["n"] == 5).all()
    # Holm over the three pairs of the family
    np.testing.assert_allclose(table["p_holm"], holm(table["p"]))


def test_pairs_only_over_shared_seeds_and_per_setting():
    runs = pd.concat(
        [
            runs_of({"a": [1.0, 2.0, 4.0], "b": [0.0, 0.0, 0.0]}, dataset="x"),
            runs_of({"a": [1.0, 1.0], "b": [1.0, 1.0]}, dataset="y"),
        ]
    )
    runs = runs[~((runs.dataset == "x") & (runs.strategy == "b") & (runs.seed == 2))]
    table = paired_table(runs, ["dataset"], ["acc"]).set_index("dataset")
    assert table.loc["x", "n"] == 2 and table.loc["x", "mean_diff"] == pytest.approx(1.5)
    assert table.loc["y", "mean_diff"] == 0 and not table.loc["y", "significant"]


def test_friedman_known_answer_and_critical_difference():
    # a always first, b second, c third on 4 datasets: rank sums 4, 8, 12
    scores = pd.DataFrame(
        {"a": [0.9, 0.8, 0.95, 0.7], "b": [0.8, 0.7, 0.9, 0.6], "c": [0.1, 0.2, 0.3, 0.5]},
        index=list("wxyz"),
    )
    result = ranking(scores)
    assert result["mean_ranks"].to_dict() == {"a": 1.0, "b": 2.0, "c": 3.0}
    assert result["friedman_chi2"] == pytest.approx(8.0)  # 12/(N k (k+1)) sum R^2 - 3 N (k+1)
    assert result["friedman_p"] == pytest.approx(np.exp(-4))  # chi2 survival with 2 df
    assert result["cd"] == pytest.approx(2.343 * np.sqrt(3 * 4 / 24), abs=1e-3)  # Demsar q=2.343
    nemenyi = result["nemenyi"]
    assert nemenyi.loc["a", "c"] < 0.05 < nemenyi.loc["a", "b"]
    # lower is better reverses the ranks
    assert ranking(scores, lower_is_better=True)["mean_ranks"]["c"] == 1.0


def test_critical_difference_matches_demsar_table():
    for k, q in [(2, 1.960), (4, 2.569), (6, 2.850), (10, 3.164)]:
        assert critical_difference(k, 1) == pytest.approx(q * np.sqrt(k * (k + 1) / 6), abs=2e-3)


def test_ranking_table_over_datasets_and_cd_figure():
    rng = np.random.default_rng(0)
    frames = [
        runs_of(
            {
                s: list(base + rng.normal(0, 0.01, 3))
                for s, base in zip("abc", [0.9, 0.6, 0.3], strict=True)
            },
            dataset=d,
        )
        for d in ["d1", "d2", "d3", "d4", "d5"]
    ]
    table = ranking_table(pd.concat(frames), ["acc"])
    assert table["strategy"].tolist() == ["a", "b", "c"]
    assert table["mean_rank"].tolist() == [1.0, 2.0, 3.0]
    assert table["friedman_p"].iloc[0] == pytest.approx(stats.chi2.sf(10.0, 2))
    assert cliques(table.set_index("strategy")["mean_rank"], table["cd"].iloc[0]) == [
        (1.0, 2.0),
        (2.0, 3.0),
    ]
    fig = plot_critical_difference(table, metric="acc")
    assert fig.axes and "CD" in " ".join(t.get_text() for t in fig.axes[0].texts)
    assert ranking_table(frames[0], ["acc"]).empty  # one dataset: no ranking


def test_arms_own_hyperparameters_and_settings():
    runs = pd.DataFrame(
        {
            "dataset": "d",
            "strategy": ["sequential", "sequential", "ewc", "ewc", "ewc", "ewc"],
            "seed": [0, 1, 0, 1, 0, 1],
            "learning_rate": [0.1, 0.1, 0.01, 0.01, 0.01, 0.01],
            "setting": ["s", "s", "e1", "e1", "e2", "e2"],
            "acc": [0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
        }
    )
    keys = ["dataset", "strategy", "learning_rate", "setting"]
    arms, setting_keys = comparison_arms(runs, keys, ["learning_rate"])
    assert setting_keys == ["dataset"]  # each strategy's own learning rate is part of its arm
    assert arms["strategy"].tolist() == ["sequential"] * 2 + ["ewc@e1"] * 2 + ["ewc@e2"] * 2
    table = paired_table(arms, setting_keys, ["acc"])
    assert len(table) == 3  # sequential, ewc@e1, ewc@e2: three pairs
