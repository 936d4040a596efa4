"""Which differences between strategies are real: paired tests and rankings over datasets.

Runs of different strategies with the same seed share the data order and the initial weights,
so strategies are compared by paired differences over the seeds both ran:

- ``paired_table``: for every pair of strategies in a setting and every metric, the mean paired
  difference ``d = a - b`` with its 95% Student-t interval, the paired t-test's p-value
  (``scipy.stats.ttest_rel``) and Holm's step-down adjustment over the pairs of that setting
  and metric (``p_holm``; ``significant`` is ``p_holm < 0.05``).
- ``ranking_table``: with several datasets (blocks), each strategy's seed-mean metric ranked
  within each dataset (1 = best; ties share the mean rank), the mean ranks, Friedman's test
  (``scipy.stats.friedmanchisquare``), Nemenyi's post-hoc p-values (``scikit-posthocs``) and the
  critical difference of the mean ranks (Demšar 2006), drawn by :mod:`forgetbench.plots.cd`.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
PAIRED_METRICS = ["acc", "forgetting", "bwt"]
LOWER_IS_BETTER = {"forgetting", "forgetting_last", "val_forgetting", "val_forgetting_last"}


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (each compared with ``alpha`` directly).

    The ``i``-th smallest of ``m`` p-values is multiplied by ``m - i`` (``i`` from 0), made
    non-decreasing along that order, and capped at 1.
    """
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (len(p) - np.arange(len(p)))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted


def paired_difference(a, b) -> dict:
    """Mean of ``a - b`` over paired values, its 95% interval and the paired t-test.

    Differences that are all equal (up to rounding) have no spread: p is 1 when they are 0,
    else 0.
    """
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n, mean = len(d), float(d.mean()) if len(d) else float("nan")
    if n < 2:
        return {"n": n, "mean_diff": mean, "ci95_low": np.nan, "ci95_high": np.nan, "p": np.nan}
    sd = float(d.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n))
    constant = 1.0 if abs(mean) <= 1e-12 else 0.0
    no_spread = sd <= 1e-12 * max(1.0, abs(mean))  # equal up to rounding
    p = constant if no_spread else float(stats.ttest_rel(a, b).pvalue)
    return {"n": n, "mean_diff": mean, "ci95_low": mean - half, "ci95_high": mean + half, "p": p}


def paired_table(
    runs: pd.DataFrame, setting_keys: list[str], metrics: list[str] = PAIRED_METRICS
) -> pd.DataFrame:
    """Paired differences of every pair of strategies within each setting, Holm-corrected.

    Args:
        runs: One row per completed run: ``strategy``, ``seed``, ``setting_keys`` and metrics.
        setting_keys: Columns that make a setting (not ``strategy``): pairs are formed within.
        metrics: Metric columns compared (those missing from ``runs`` are skipped).

    Returns:
        Rows ``*setting_keys, metric, strategy_a, strategy_b, n, mean_diff, ci95_low,
        ci95_high, p, p_holm, significant`` (``mean_diff`` is ``a - b`` over shared seeds).
    """
    rows = []
    metrics = [m for m in metrics if m in runs]
    groups = runs.groupby(setting_keys, dropna=False, sort=True) if setting_keys else [((), runs)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        strategies = list(dict.fromkeys(group["strategy"]))
        for metric in metrics:
            wide = group.pivot_table(index="seed", columns="strategy", values=metric)
            family = []
            for a, b in combinations(strategies, 2):
                shared = wide[[a, b]].dropna()
                result = paired_difference(shared[a], shared[b])
                family.append(
                    {
                        **dict(zip(setting_keys, key, strict=True)),
                        "metric": metric,
                        "strategy_a": a,
                        "strategy_b": b,
                        **result,
                    }
                )
            tested = [r for r in family if not np.isnan(r["p"])]
            for r, p in zip(tested, holm([r["p"] for r in tested]), strict=True):
                r["p_holm"] = float(p)
            for r in family:
                r.setdefault("p_holm", np.nan)
                r["significant"] = bool(r["p_holm"] < ALPHA)
            rows += family
    columns = [*setting_keys, "metric", "strategy_a", "strategy_b", "n", "mean_diff"]
    columns += ["ci95_low", "ci95_high", "p", "p_holm", "significant"]
    return pd.DataFrame(rows, columns=columns)


def _one_per_strategy(runs: pd.DataFrame, column: str) -> bool:
    return bool((runs.groupby("strategy")[column].nunique(dropna=False) <= 1).all())


def comparison_arms(
    runs: pd.DataFrame, keys: list[str], config_columns: list[str]
) -> tuple[pd.DataFrame, list[str]]:
    """Runs labelled for paired comparisons, and the columns that make a setting.

    A strategy run in several settings within one (another hyperparameter value) is compared
    as ``strategy@setting`` per setting; the setting keys are the report's grouping keys
    without ``strategy``, ``setting`` and the config values that each strategy ran with one
    value of (its own, e.g. tuned, hyperparameters) among ``config_columns``.
    """
    setting_keys = [k for k in keys if k not in ("strategy", "setting")]
    # A config value each strategy ran with one value of (a tuned learning rate) is part of
    # the strategy's arm, not of the setting: strategies are compared each with its own.
    own = [k for k in setting_keys if k in config_columns and _one_per_strategy(runs, k)]
    setting_keys = [k for k in setting_keys if k not in own]
    runs = runs.copy()
    if "setting" in runs:
        by = [*setting_keys, "strategy"]
        several = runs.groupby(by, dropna=False)["setting"].transform("nunique") > 1
        runs.loc[several, "strategy"] = runs.loc[several, "strategy"] + "@" + runs["setting"]
    return runs, setting_keys


def mean_ranks(scores: pd.DataFrame, lower_is_better: bool = False) -> pd.DataFrame:
    """Ranks of the strategies (columns) within each block (row): 1 is best, ties averaged."""
    return (scores if lower_is_better else -scores).rank(axis=1, method="average")


def critical_difference(k: int, n: int, alpha: float = ALPHA) -> float:
    """Nemenyi's critical difference of mean ranks: ``q_alpha * sqrt(k (k + 1) / (6 n))``.

    ``q_alpha`` is the studentized range quantile over ``sqrt(2)`` (Demšar 2006, Table 5).
    """
    q = stats.studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2)
    return float(q * np.sqrt(k * (k + 1) / (6 * n)))


def ranking(scores: pd.DataFrame, lower_is_better: bool = False) -> dict:
    """Mean ranks, Friedman's test, Nemenyi's p-values and the critical difference.

    Args:
        scores: One row per block (dataset), one column per strategy; no missing values.
        lower_is_better: Whether a smaller score ranks first.

    Returns:
        ``mean_ranks`` (Series), ``friedman_chi2``, ``friedman_p``, ``nemenyi`` (DataFrame of
        p-values), ``cd``, ``blocks``.
    """
    import scikit_posthocs

    k, n = scores.shape[1], scores.shape[0]
    ranks = mean_ranks(scores, lower_is_better)
    chi2, p = (np.nan, np.nan)
    if k >= 3 and n >= 2:
        chi2, p = stats.friedmanchisquare(*(scores[c].to_numpy() for c in scores))
    oriented = -scores if lower_is_better else scores
    nemenyi = scikit_posthocs.posthoc_nemenyi_friedman(oriented.to_numpy())
    nemenyi.index = nemenyi.columns = list(scores.columns)
    return {
        "mean_ranks": ranks.mean().sort_values(),
        "friedman_chi2": float(chi2),
        "friedman_p": float(p),
        "nemenyi": nemenyi,
        "cd": critical_difference(k, n),
        "blocks": n,
    }


def ranking_table(runs: pd.DataFrame, metrics: list[str] = PAIRED_METRICS) -> pd.DataFrame:
    """Mean ranks over datasets of every strategy run on all of them, per metric.

    Rows ``metric, strategy, mean_rank, blocks, friedman_chi2, friedman_p, cd``; empty when
    fewer than two datasets or two strategies share runs.
    """
    rows = []
    for metric in (m for m in metrics if m in runs):
        scores = runs.pivot_table(index="dataset", columns="strategy", values=metric).dropna(axis=1)
        if scores.shape[0] < 2 or scores.shape[1] < 2:
            continue
        result = ranking(scores, metric in LOWER_IS_BETTER)
        for strategy, rank in result["mean_ranks"].items():
            rows.append(
                {
                    "metric": metric,
                    "strategy": strategy,
                    "mean_rank": float(rank),
                    "blocks": result["blocks"],
                    "friedman_chi2": result["friedman_chi2"],
                    "friedman_p": result["friedman_p"],
                    "cd": result["cd"],
                }
            )
    columns = ["metric", "strategy", "mean_rank", "blocks", "friedman_chi2", "friedman_p", "cd"]
    return pd.DataFrame(rows, columns=columns)
