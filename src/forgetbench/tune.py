r"""``forgetbench-tune``: a tuned comparison in one command.

For a dataset (any overrides) and a list of strategies: search each strategy's hyperparameters
on validation data (``forgetbench -m search=STRATEGY``, :mod:`forgetbench.search`), re-run each
strategy's best configuration over fresh seeds (not those of the search), and write the report
of those runs, with ``chosen.md`` saying which configuration each strategy used and how it was
chosen::

    forgetbench-tune --strategies sequential,ewc,replay --out results/tuned/split_digits \
        experiment=split_digits

With ``--first-shards K`` the protocol of Chaudhry et al. (2019) is followed: the search sees
shards ``0..K-1`` only (``shard_range=[0, K]``) and the comparison runs on the others
(``shard_range=[K, null]``). Every step is a ``forgetbench`` multirun in its own folder
(``OUT/search/STRATEGY``, ``OUT/final/STRATEGY/choice-DIGEST``), so running the command again
resumes it; the report reads the final runs of the current choices only.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from forgetbench.per_strategy import override_key
from forgetbench.results.io import write_with
from forgetbench.results.run_files import read_summary
from forgetbench.search import best_trial, trials_table

Runner = Callable[[list[str]], None]


def forgetbench(args: list[str]) -> None:
    """Runs ``forgetbench ARGS`` in a child process; raises if it fails."""
    done = subprocess.run([sys.executable, "-m", "forgetbench.cli", *args], check=False)
    if done.returncode != 0:
        raise SystemExit(
            f"[forgetbench-tune] failed ({done.returncode}): forgetbench {' '.join(args)}"
        )


def chosen_overrides(trial_overrides: list[str], given: list[str]) -> list[str]:
    """The searched values of a trial: its overrides less those given and ``search=``."""
    fixed = {override_key(o) for o in given} | {"search", "shard_range"}
    return [o for o in trial_overrides if override_key(o) not in fixed]


SEARCH_ONLY = ("tuning.", "hydra.sweeper.")  # overrides of the search, left out of the final runs


def final_overrides(given: list[str]) -> list[str]:
    """The given overrides that apply to the final runs (not ``tuning.*``, ``hydra.sweeper.*``)."""
    return [o for o in given if not override_key(o).startswith(SEARCH_ONLY)]


def validation_fraction(trial_folder: str) -> float:
    """``data.validation_fraction`` of a trial's first run (the final runs train on the same)."""
    first = sorted(Path(trial_folder).glob("seed=*"))[0]
    config = read_summary(first)["config"]
    return float(config["data"].get("validation_fraction") or 0.0)


def choice_folder(final: list[str]) -> str:
    """``choice-<digest>``: the final runs' folder for one choice of values (and seeds).

    A search that picks other values (more trials, another objective) re-runs into a new
    folder, and the report reads the folders of the current choices only.
    """
    return "choice-" + hashlib.sha256("\n".join(final).encode()).hexdigest()[:10]


def tuned_comparison(
    strategies: list[str],
    out: Path,
    overrides: list[str],
    seeds: list[int],
    n_trials: int | None = None,
    first_shards: int | None = None,
    runner: Runner = forgetbench,
) -> pd.DataFrame:
    """Searches, re-runs the best configurations over ``seeds`` and reports; returns the choices.

    Args:
        strategies: Strategies with a search preset in ``conf/search/``.
        out: Output folder (``search/``, ``final/``, ``report/``).
        overrides: Overrides of every run (the dataset, an experiment preset, ...); those of
            ``tuning.*`` and ``hydra.sweeper.*`` apply to the searches only.
        seeds: Training seeds of the final runs (keep them apart from ``tuning.seeds``).
        n_trials: The budget of trials per strategy (``None``: the preset's).
        first_shards: Search on the first ``K`` shards, compare on the rest.
        runner: Runs one ``forgetbench`` command line.
    """
    from forgetbench.report import report

    budget = [] if n_trials is None else [f"hydra.sweeper.n_trials={n_trials}"]
    search_range = [] if first_shards is None else [f"shard_range=[0,{first_shards}]"]
    final_range = [] if first_shards is None else [f"shard_range=[{first_shards},null]"]
    rows, final_dirs = [], []
    for strategy in strategies:
        search_dir = out / "search" / strategy
        runner(
            [
                "-m",
                f"search={strategy}",
                *overrides,
                *budget,
                *search_range,
                f"hydra.sweep.dir={search_dir}",
            ]
        )
        best = best_trial(search_dir)
        chosen = chosen_overrides(list(best["overrides"]), overrides)
        fraction = validation_fraction(best["folder"])
        trials = trials_table(search_dir)
        final = [
            *final_overrides(overrides),
            *chosen,
            f"data.validation_fraction={fraction}",
            *final_range,
            f"seed={','.join(str(s) for s in seeds)}",
        ]
        final_dirs.append(out / "final" / strategy / choice_folder(final))
        runner(["-m", f"strategy={strategy}", *final, f"hydra.sweep.dir={final_dirs[-1]}"])
        rows.append(
            {
                "strategy": strategy,
                "configuration": " ".join(chosen) or "(preset defaults)",
                "chosen_by": f"best mean {best['objective']} ({best['direction']}) of "
                f"{len(trials)} distinct configurations tried",
                "objective": best["value"],
                "trials_completed": int((trials["status"] == "completed").sum()),
                "trials_failed": int((trials["status"] != "completed").sum()),
                "search_shards": "all" if first_shards is None else f"0..{first_shards - 1}",
                "final_seeds": ",".join(str(s) for s in seeds),
            }
        )
    choices = pd.DataFrame(rows)
    report_dir = out / "report"
    report(final_dirs, report_dir)  # this choice's runs only, not those of earlier choices
    write_with(report_dir / "chosen.csv", lambda p: choices.to_csv(p, index=False))
    write_with(report_dir / "chosen.md", lambda p: p.write_text(chosen_markdown(choices)))
    print(chosen_markdown(choices))
    return choices


def chosen_markdown(choices: pd.DataFrame) -> str:
    """Which configuration each strategy's rows used, and how it was chosen, as Markdown."""
    columns = list(choices.columns)
    lines = [
        "Configurations chosen on validation data (search seeds), reported over fresh seeds.",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for row in choices.itertuples(index=False):
        lines.append(
            "| " + " | ".join(f"`{v}`" if i == 1 else str(v) for i, v in enumerate(row)) + " |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="forgetbench-tune",
        description=__doc__.replace("``", "`").replace("::\n", ":\n").replace(":mod:", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--strategies", required=True, help="comma-separated, e.g. ewc,replay")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seeds", default="0,1,2", help="seeds of the final runs (0,1,2)")
    parser.add_argument("--n-trials", type=int, help="trials per strategy (default: preset's)")
    parser.add_argument("--first-shards", type=int, help="search on the first K shards only")
    parser.add_argument(
        "overrides", nargs="*", help="overrides of every run, e.g. data=digits_split"
    )
    args = parser.parse_args(argv)
    tuned_comparison(
        [s for s in args.strategies.split(",") if s],
        args.out,
        args.overrides,
        [int(s) for s in args.seeds.split(",")],
        n_trials=args.n_trials,
        first_shards=args.first_shards,
    )


if __name__ == "__main__":
    main()
