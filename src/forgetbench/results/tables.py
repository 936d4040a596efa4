"""The summary table as text: Markdown and LaTeX (booktabs), ``mean ± ci`` per metric."""

from __future__ import annotations

import math

import pandas as pd

METRIC_LABELS = {
    "acc": "ACC",
    "forgetting": "forgetting",
    "bwt": "BWT",
    "fwt": "FWT",
    "min_acc": "min-ACC",
    "wc_acc": "WC-ACC",
    "acc_auc": "ACC AUC",
    "forgetting_last": "forgetting since learned",
}
LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _columns(table: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Identity columns (those before ``seeds``) and metrics (those with a ``_ci95`` column)."""
    keys = list(table.columns[: table.columns.get_loc("seeds")])
    return keys, [c.removesuffix("_ci95") for c in table.columns if c.endswith("_ci95")]


def _mean_ci(mean: float, ci: float, pm: str) -> str | None:
    if mean is None or math.isnan(mean):
        return None
    return f"{mean:.3f}" + ("" if ci is None or math.isnan(ci) else f"{pm}{ci:.3f}")


def markdown(table: pd.DataFrame) -> str:
    """The summary table as Markdown: identity columns, seeds, then ``mean ± ci`` per metric.

    Args:
        table: Rows ``*keys, seeds, METRIC, METRIC_ci95`` (``summary_table``).
    """
    keys, metrics = _columns(table)
    head = [*keys, "seeds", *metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in table.iterrows():
        cells = [str(r[k]) for k in (*keys, "seeds")]
        cells += [_mean_ci(r[m], r[f"{m}_ci95"], " ± ") or "n/a" for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def latex_escape(text: str) -> str:
    """Escapes LaTeX's special characters in plain text."""
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in text)


def latex(table: pd.DataFrame) -> str:
    r"""The summary table as a booktabs ``tabular``, ``$mean \pm ci$`` per metric.

    Identity columns are left-aligned, seeds right-aligned, metrics centred; a metric that is
    NaN prints ``--``, one without an interval (a single seed) prints the mean alone. Needs
    ``\usepackage{booktabs}``.

    Args:
        table: Rows ``*keys, seeds, METRIC, METRIC_ci95`` (``summary_table``).
    """
    keys, metrics = _columns(table)
    head = [*(k.replace("_", " ") for k in keys), "seeds"]
    head += [METRIC_LABELS.get(m, m.replace("_", " ")) for m in metrics]
    lines = [
        "% mean $\\pm$ 95% Student-t confidence interval over seeds; needs \\usepackage{booktabs}",
        "\\begin{tabular}{" + "l" * len(keys) + "r" + "c" * len(metrics) + "}",
        "\\toprule",
        " & ".join(latex_escape(h) for h in head) + " \\\\",
        "\\midrule",
    ]
    for _, r in table.iterrows():
        cells = [latex_escape(str(r[k])) for k in keys] + [str(r["seeds"])]
        for m in metrics:
            text = _mean_ci(r[m], r[f"{m}_ci95"], " \\pm ")
            cells.append("--" if text is None else f"${text}$")
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def paired_markdown(paired: pd.DataFrame) -> str:
    """The paired comparisons as Markdown: ``a - b`` with its 95% interval and Holm's p."""
    if paired.empty:
        return "No pair of strategies shares a setting and seeds: no paired comparison.\n"
    keys = list(paired.columns[: paired.columns.get_loc("metric")])
    lines = [
        "Paired differences a - b over the seeds both ran (95% Student-t interval); p: paired "
        "t-test, Holm-adjusted over the pairs of each setting and metric; * p_holm < 0.05.",
        "",
        "| " + " | ".join([*keys, "metric", "a", "b", "seeds", "a - b", "95% CI", "p_holm"]) + " |",
        "|" + "---|" * (len(keys) + 7),
    ]
    for row in paired.itertuples(index=False):
        r = row._asdict()
        mark = " *" if r["significant"] else ""
        lines.append(
            "| "
            + " | ".join(
                [
                    *(str(r[k]) for k in keys),
                    r["metric"],
                    r["strategy_a"],
                    r["strategy_b"],
                    str(r["n"]),
                    f"{r['mean_diff']:+.3f}",
                    f"[{r['ci95_low']:+.3f}, {r['ci95_high']:+.3f}]",
                    f"{r['p_holm']:.3g}{mark}",
                ]
            )
            + " |"
        )
    return "\n".join(lines) + "\n"
