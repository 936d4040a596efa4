"""Peer benchmark: forgetbench against Avalanche 0.6.0 on Split Digits, in interleaved rounds.

Run with forgetbench's interpreter (``make bench-peers``, or ``.venv/bin/python
bench/peers/run.py``) once ``bench/peers/.venv`` holds ``bench/peers/requirements.txt``. Each
round runs these processes, in reverse order every other round, so a burst of other load on the
machine hits both sides alike:

- Avalanche grid: ``avalanche_split_digits.py`` (4 strategies x seeds 0, 1, 2 in one process):
  per-run ACC and train+eval seconds, and the process's wall time (imports included).
- forgetbench runs: ``forgetbench_split_digits.py runs`` (the same grid through the Python
  API, one process): per-run ACC and ``train_seconds + eval_seconds``.
- forgetbench grid: ``forgetbench_split_digits.py grid``, the wall time of one
  ``forgetbench -m ... strategy=... seed=0,1,2`` process (basic launcher).
- single runs (``protocol.SINGLE``) as whole processes on each side, wall time.
- forgetbench runs again with the default evaluation interval (``eval.every_samples`` of
  conf/config.yaml) instead of after every shard only, unless ``--no-default-eval``.

Printed: per strategy, ACC mean and sample standard deviation over the seeds on each side, the
median per-run train+eval seconds (over seeds and rounds) and their ratio forgetbench /
Avalanche; the wall times (median and best over rounds) of the grids and the single runs and
their ratios. Written: ``results/bench/NAME.json`` (default ``peers``), machine info included.
The two sides must report the same data digest, or nothing is compared.

Differences the protocol leaves (details in the two sides' docstrings): initialisation (Keras
Glorot-uniform with zero biases against PyTorch's default; ``avalanche_split_digits.py --init
glorot`` switches Avalanche to Keras's, ``forgetbench_split_digits.py --init torch`` switches
forgetbench to PyTorch's: ``model.init=torch``); replay buffers (forgetbench: a reservoir over the
stream, 32 samples drawn per batch; Avalanche: an experience-balanced buffer, 32 per batch from
a shuffled pass over it); EWC (Avalanche's ``ewc_lambda`` is set to 50, forgetbench's lambda
100 without its 1/2, but the Fisher estimates differ in scale: mini-batch against per-sample
squared gradients); threads (torch pinned to one, TensorFlow left at its defaults).

forgetbench is measured from this checkout's working tree, or with ``--forgetbench-ref REF`` from
a clean export of a commit (``git archive``, into ``$FORGETBENCH_BENCH_DIR/peers/``): its ``src``
and ``conf`` with this .venv's packages, so a before/after pair can be measured on one machine.

Usage: ``python bench/peers/run.py [--rounds 3] [--seeds 0 1 2] [--no-default-eval]
[--forgetbench-ref HEAD]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import common  # noqa: E402
import protocol  # noqa: E402

common.quiet_tensorflow()

PEERS_PYTHON = HERE / ".venv" / "bin" / "python"
LOGS = common.SCRATCH / "peers" / "logs"


def git(*args: str) -> str:
    """Output of a git command in this checkout."""
    return subprocess.run(
        ["git", "-C", str(protocol.ROOT), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def forgetbench_source(ref: str | None) -> dict:
    """Where forgetbench is measured from: the working tree, or a clean export of ``ref``."""
    head = git("rev-parse", "HEAD")
    if ref is None:
        dirty = bool(git("status", "--porcelain", "--", "src", "conf"))
        return {"root": str(protocol.ROOT), "ref": "working tree", "commit": head, "dirty": dirty}
    commit = git("rev-parse", "--verify", f"{ref}^{{commit}}")
    root = common.SCRATCH / "peers" / f"forgetbench-{commit[:12]}"
    if not (root / ".exported").exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        tar = subprocess.run(
            ["git", "-C", str(protocol.ROOT), "archive", commit, "src", "conf"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(root)], input=tar, check=True)
        (root / ".exported").write_text(commit + "\n")
    return {"root": str(root), "ref": ref, "commit": commit, "dirty": False}


def default_every_samples() -> int:
    """``eval.every_samples`` of the measured forgetbench's conf/config.yaml."""
    from omegaconf import OmegaConf

    root = Path(os.environ.get("FORGETBENCH_PEERS_ROOT") or protocol.ROOT)
    return int(OmegaConf.load(root / "conf" / "config.yaml").eval.every_samples)


class Steps:
    """The processes of one round; each returns its parsed result plus ``process_wall_s``."""

    def __init__(self, args) -> None:
        self.args = args
        self.seeds = [str(s) for s in args.seeds]
        self.env = protocol.quiet_env(FORGETBENCH_PEERS_ROOT=args.source["root"])

    def _run(self, name: str, cmd: list[str], round_: int) -> dict:
        log = LOGS / f"round{round_ + 1}-{name}.log"
        wall, output = protocol.timed_process([str(c) for c in cmd], log, env=self.env)
        return {**protocol.parse(output), "process_wall_s": wall}

    def avalanche(self, round_: int, single: bool = False) -> dict:
        strategy, seed = protocol.SINGLE
        grid = ["--seeds", *self.seeds]
        pick = ["--strategies", strategy, "--seeds", str(seed)] if single else grid
        cmd = [self.args.peers_python, HERE / "avalanche_split_digits.py", *pick]
        return self._run("avalanche-single" if single else "avalanche-grid", cmd, round_)

    def forgetbench(self, mode: str, round_: int, every: int | None = None) -> dict:
        extra = [] if mode == "single" else ["--seeds", *self.seeds]
        extra += [] if every is None else ["--eval-every", str(every)]
        cmd = [sys.executable, HERE / "forgetbench_split_digits.py", mode, *extra]
        name = f"forgetbench-{mode}" + ("" if every is None else f"-every{every}")
        return self._run(name, cmd, round_)

    def plan(self) -> list[tuple[str, Callable[[int], dict]]]:
        """``(key, function of the round)`` for every process of a round, in forward order."""
        plan = [
            ("avalanche_grid", lambda r: self.avalanche(r)),
            ("forgetbench_runs", lambda r: self.forgetbench("runs", r)),
            ("forgetbench_grid", lambda r: self.forgetbench("grid", r)),
            ("avalanche_single", lambda r: self.avalanche(r, single=True)),
            ("forgetbench_single", lambda r: self.forgetbench("single", r)),
        ]
        if self.args.default_eval:
            every = default_every_samples()
            plan.append(
                ("forgetbench_runs_default_eval", lambda r: self.forgetbench("runs", r, every))
            )
        return plan


def by_strategy(runs: list[dict]) -> dict[str, list[dict]]:
    """Runs grouped by strategy, in ``protocol.STRATEGIES`` order."""
    out: dict[str, list[dict]] = {}
    for name in protocol.STRATEGIES:
        out[name] = [r for r in runs if r["strategy"] == name]
    return out


def sd(values: list[float]) -> float:
    """Sample standard deviation (0 for one value)."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def deterministic(rounds: list[dict], key: str) -> bool:
    """Whether every round gave the same ACC per strategy and seed."""
    first = {(r["strategy"], r["seed"]): r["acc"] for r in rounds[0][key]["runs"]}
    return all(
        {(r["strategy"], r["seed"]): r["acc"] for r in rnd[key]["runs"]} == first for rnd in rounds
    )


def strategy_rows(rounds: list[dict], default_eval: bool) -> list[dict]:
    """Per strategy (and all together): ACC over seeds, median per-run train+eval seconds."""
    first_fb = by_strategy(rounds[0]["forgetbench_runs"]["runs"])
    first_av = by_strategy(rounds[0]["avalanche_grid"]["runs"])

    def pooled(key: str) -> dict[str, list[float]]:
        runs = [r for rnd in rounds for r in rnd[key]["runs"]]
        groups = {name: [r["train_eval_s"] for r in rs] for name, rs in by_strategy(runs).items()}
        groups["all"] = [r["train_eval_s"] for r in runs]
        return groups

    fb, av = pooled("forgetbench_runs"), pooled("avalanche_grid")
    fb_default = pooled("forgetbench_runs_default_eval") if default_eval else {}
    rows = []
    for name in [*protocol.STRATEGIES, "all"]:
        row = {"strategy": name}
        if name != "all":
            acc_fb = [r["acc"] for r in first_fb[name]]
            acc_av = [r["acc"] for r in first_av[name]]
            row.update(
                acc_fb=statistics.mean(acc_fb),
                acc_fb_sd=sd(acc_fb),
                acc_fb_seeds=acc_fb,
                acc_av=statistics.mean(acc_av),
                acc_av_sd=sd(acc_av),
                acc_av_seeds=acc_av,
                acc_fb_text=f"{statistics.mean(acc_fb):.3f} ± {sd(acc_fb):.3f}",
                acc_av_text=f"{statistics.mean(acc_av):.3f} ± {sd(acc_av):.3f}",
            )
        row.update(
            runs_timed=len(fb[name]),
            train_eval_fb_s=statistics.median(fb[name]),
            train_eval_av_s=statistics.median(av[name]),
        )
        row["ratio"] = row["train_eval_fb_s"] / row["train_eval_av_s"]
        if fb_default:
            row["train_eval_fb_default_eval_s"] = statistics.median(fb_default[name])
        rows.append(row)
    return rows


def wall_rows(rounds: list[dict]) -> list[dict]:
    """Grid and single-run process wall times, median and best over the rounds."""
    rows = []
    for what, fb_key, av_key, fb_field in (
        ("grid (strategies x seeds, one process)", "forgetbench_grid", "avalanche_grid", "wall_s"),
        ("single run, one process", "forgetbench_single", "avalanche_single", "wall_s"),
    ):
        fb = [rnd[fb_key][fb_field] for rnd in rounds]
        av = [rnd[av_key]["process_wall_s"] for rnd in rounds]
        rows.append(
            {
                "what": what,
                "jobs": len(rounds[0][fb_key]["runs"]),
                "fb_median_s": statistics.median(fb),
                "fb_best_s": min(fb),
                "av_median_s": statistics.median(av),
                "av_best_s": min(av),
                "ratio_median": statistics.median(fb) / statistics.median(av),
                "ratio_best": min(fb) / min(av),
                "fb_rounds_s": fb,
                "av_rounds_s": av,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(protocol.SEEDS))
    parser.add_argument(
        "--no-default-eval",
        dest="default_eval",
        action="store_false",
        help="skip the forgetbench runs at the default evaluation interval",
    )
    parser.add_argument("--peers-python", type=Path, default=PEERS_PYTHON)
    parser.add_argument(
        "--forgetbench-ref",
        default=None,
        help="measure forgetbench at this commit (clean export) instead of the working tree",
    )
    parser.add_argument("--name", default="peers", help="results/bench/NAME.json")
    args = parser.parse_args(argv)
    if not args.peers_python.exists():
        raise SystemExit(f"{args.peers_python} is missing: `make bench-peers` creates it")
    args.source = forgetbench_source(args.forgetbench_ref)
    os.environ["FORGETBENCH_PEERS_ROOT"] = args.source["root"]
    print(f"forgetbench from {args.source['ref']} ({args.source['root']})", flush=True)
    start = time.perf_counter()
    steps = Steps(args)
    plan = steps.plan()
    rounds = []
    for r in range(args.rounds):
        order = plan if r % 2 == 0 else plan[::-1]
        results = {}
        for key, step in order:
            t0 = time.perf_counter()
            results[key] = step(r)
            print(
                f"  round {r + 1}/{args.rounds}: {key} {time.perf_counter() - t0:.1f} s", flush=True
            )
        rounds.append(results)

    digests = {k: rounds[0][k]["digest"] for k in ("avalanche_grid", "forgetbench_runs")}
    if len({str(d) for d in digests.values()}) != 1:
        raise SystemExit(f"The two sides trained on different data: {digests}")
    srows = strategy_rows(rounds, args.default_eval)
    wrows = wall_rows(rounds)
    av = rounds[0]["avalanche_grid"]
    every = default_every_samples() if args.default_eval else None
    print(
        f"\nSplit Digits: 5 experiences of 2 classes, MLP 64-100-100-10, Adam 1e-3, batch "
        f"{protocol.BATCH_SIZE}, {protocol.EPOCHS} epochs; seeds {args.seeds}; {args.rounds} "
        f"rounds. Avalanche {av['versions']['avalanche']} (torch {av['versions']['torch']}, "
        f"{av['threads']} thread); forgetbench {args.source['ref']} "
        f"({args.source['commit'][:12]}{', modified' if args.source['dirty'] else ''}), "
        "evaluating after every shard only.\n"
    )
    columns = [
        ("strategy", "strategy", ""),
        ("acc_fb_text", "ACC forgetbench", ""),
        ("acc_av_text", "ACC Avalanche", ""),
        ("train_eval_fb_s", "train+eval s forgetbench", ".2f"),
        ("train_eval_av_s", "train+eval s Avalanche", ".2f"),
        ("ratio", "forgetbench / Avalanche", ".2f"),
    ]
    if args.default_eval:
        columns.append(
            ("train_eval_fb_default_eval_s", f"forgetbench s, eval every {every}", ".2f")
        )
    print(common.table(srows, columns))
    print("\nACC: mean ± sample sd over seeds; seconds: median per run over seeds and rounds.\n")
    print(
        common.table(
            wrows,
            [
                ("what", "process wall", ""),
                ("jobs", "runs", "d"),
                ("fb_median_s", "forgetbench s (median)", ".1f"),
                ("av_median_s", "Avalanche s (median)", ".1f"),
                ("ratio_median", "ratio (median)", ".2f"),
                ("fb_best_s", "forgetbench s (best)", ".1f"),
                ("av_best_s", "Avalanche s (best)", ".1f"),
                ("ratio_best", "ratio (best)", ".2f"),
            ],
        )
    )
    total = time.perf_counter() - start
    deterministic_acc = {
        "forgetbench": deterministic(rounds, "forgetbench_runs"),
        "avalanche": deterministic(rounds, "avalanche_grid"),
    }
    print(
        f"\nAvalanche imports: {av['import_s']:.1f} s; same ACC in every round: "
        f"{deterministic_acc}; benchmark took {total / 60:.1f} min."
    )
    payload = {
        "protocol": {
            k: getattr(protocol, k)
            for k in (
                "CLASS_GROUPS",
                "HELDOUT_FRACTION",
                "SPLIT_SEED",
                "HIDDEN",
                "BATCH_SIZE",
                "EVAL_BATCH_SIZE",
                "EPOCHS",
                "LEARNING_RATE",
                "REPLAY_CAPACITY",
                "REPLAY_SIZE",
                "EWC_LAMBDA",
            )
        },
        "seeds": args.seeds,
        "rounds": args.rounds,
        "forgetbench": args.source,
        "avalanche": {k: av[k] for k in ("versions", "threads", "ewc_lambda", "init")},
        "default_eval_every_samples": every,
        "digest": digests["forgetbench_runs"],
        "deterministic_acc": deterministic_acc,
        "strategies": srows,
        "walls": wrows,
        "total_s": total,
        "round_results": rounds,
    }
    path = common.write_result(args.name, payload)
    print(f"Wrote {path.relative_to(common.ROOT)}")
    return payload


if __name__ == "__main__":
    main()
