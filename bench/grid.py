"""Wall time of the default forgetting grid (``make demo``) with the basic and the Joblib launcher.

The grid is the one ``make demo`` sweeps (``DEMO`` below, kept equal to the Makefile's ``demo``
line by a test): every strategy of the demo times seeds 0, 1, 2 on the default data. It runs
as a ``forgetbench -m`` subprocess, once with Hydra's basic launcher (jobs one after another in
the launching process) and once with ``hydra/launcher=local`` (Joblib, ``n_jobs`` worker
processes; the preset's 2 unless ``--n-jobs``), each into a fresh sweep folder under
``$FORGETBENCH_BENCH_DIR/grid`` (default ``/tmp/forgetbench-bench/grid``). Reported: the wall
seconds of each command, jobs, wall seconds per job, the speed-up (basic over Joblib), the
seconds the runs spent training and evaluating (from their ``summary.json``: the rest is
start-up, TensorFlow import and tracing, data opening, writing the run folder), and whether
both launchers gave the same metrics and accuracy matrix for every job (runs are deterministic,
so they should be identical).

Before the timed sweeps an untimed single run (``train.epochs=0``) writes the default data into
a scratch data cache shared by all sweeps (``FORGETBENCH_DATA_CACHE``) and warms the page cache
for Python and TensorFlow, so neither launcher pays the one-time data generation. With
``--repeats N`` the two launchers alternate N times; the fastest wall time of each is reported
(the least disturbed by other work on the machine), with the median and every round in the JSON.

Usage: ``python bench/grid.py [--quick] [--n-jobs 2] [--repeats 1] [--keep]``; ``--quick`` runs
seed 0 only with one epoch per phase (5 jobs).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

common.quiet_tensorflow()

# The overrides of the Makefile's `demo` target (its sweep folder aside).
DEMO = ["strategy=sequential,replay,ewc,cross_shard,joint", "seed=0,1,2", "train.verbose=0"]
QUICK = [
    "strategy=sequential,replay,ewc,cross_shard,joint",
    "seed=0",
    "train.epochs=1",
    "train.verbose=0",
]
LAUNCHERS = {"basic": ["hydra/launcher=basic"], "joblib": ["hydra/launcher=local"]}
COMPARED = ("metrics", "accuracy_matrix")


def preset_n_jobs() -> int:
    """``n_jobs`` of ``conf/hydra/launcher/local.yaml``."""
    from omegaconf import OmegaConf

    return int(OmegaConf.load(common.ROOT / "conf/hydra/launcher/local.yaml").n_jobs)


def environment(data_cache: Path) -> dict:
    """The subprocesses' environment: this checkout's package, the Makefile's settings."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(common.ROOT / "src"), *filter(None, [env.get("PYTHONPATH")])]
    )
    env.setdefault("PYTHONHASHSEED", "0")  # as `make demo`
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["FORGETBENCH_DATA_CACHE"] = str(data_cache)
    return env


def forgetbench(args: list[str], env: dict, log: Path) -> float:
    """Runs ``forgetbench ARGS`` (this interpreter, this checkout); returns its wall seconds."""
    cmd = [sys.executable, "-m", "forgetbench.cli", *args]
    with log.open("w") as out:
        start = time.perf_counter()
        done = subprocess.run(
            cmd, cwd=common.ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        )
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-30:])
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}); log {log}:\n{tail}")
    return seconds


def summaries(sweep: Path) -> dict[str, dict]:
    """Every job's summary (tables beside it read back) in a sweep folder, by job folder name."""
    from forgetbench.results.run_files import read_summary

    return {
        str(p.parent.relative_to(sweep)): read_summary(p.parent)
        for p in sorted(sweep.glob("*/summary.json"))
    }


def differences(a: dict[str, dict], b: dict[str, dict]) -> list[str]:
    """Jobs missing from either side, or whose metrics or accuracy matrix differ."""
    out = [f"{job}: only in one sweep" for job in sorted(set(a) ^ set(b))]
    for job in sorted(set(a) & set(b)):
        out += [f"{job}: {key} differs" for key in COMPARED if a[job].get(key) != b[job].get(key)]
    return out


def run_sweep(launcher: str, grid: list[str], args, env: dict, repeat: int) -> dict:
    """One timed sweep of ``grid`` with ``launcher`` into a fresh folder."""
    sweep = common.SCRATCH / "grid" / f"{launcher}-{repeat}"
    shutil.rmtree(sweep, ignore_errors=True)
    extra = LAUNCHERS[launcher] + (
        [f"hydra.launcher.n_jobs={args.n_jobs}"] if launcher == "joblib" and args.n_jobs else []
    )
    load = list(os.getloadavg())  # other work (the 1-min figure still counts the last sweep)
    seconds = forgetbench(
        ["-m", *grid, *extra, f"hydra.sweep.dir={sweep}"], env, sweep.parent / f"{sweep.name}.log"
    )
    jobs = summaries(sweep)
    status = {s["status"] for s in jobs.values()}
    if status != {"completed"}:
        raise SystemExit(f"{sweep}: runs ended {sorted(status)}, expected all completed")
    return {
        "launcher": launcher,
        "overrides": extra,
        "wall_s": seconds,
        "load_average_before": load,
        "jobs": len(jobs),
        "train_s": sum(s["timing"]["train_seconds"] for s in jobs.values()),
        "eval_s": sum(s["timing"]["eval_seconds"] for s in jobs.values()),
        "sweep": sweep,
        "summaries": jobs,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seed 0, one epoch (5 jobs)")
    parser.add_argument(
        "--n-jobs", type=int, default=None, help="Joblib processes (default: the local preset's)"
    )
    parser.add_argument("--repeats", type=int, default=1, help="alternating rounds, best kept")
    parser.add_argument("--keep", action="store_true", help="keep the sweep folders")
    args = parser.parse_args(argv)
    grid = QUICK if args.quick else DEMO
    scratch = common.SCRATCH / "grid"
    scratch.mkdir(parents=True, exist_ok=True)
    env = environment(scratch / "data")

    warm = scratch / "warmup"
    shutil.rmtree(warm, ignore_errors=True)
    warmup_s = forgetbench(
        ["train.epochs=0", "train.verbose=0", f"hydra.run.dir={warm}"], env, scratch / "warmup.log"
    )
    print(f"Warm-up run (data cache, page cache): {warmup_s:.1f} s")

    rounds: dict[str, list[dict]] = {name: [] for name in LAUNCHERS}
    for repeat in range(args.repeats):
        for name in LAUNCHERS:
            result = run_sweep(name, grid, args, env, repeat)
            rounds[name].append(result)
            print(f"  {name} round {repeat + 1}: {result['wall_s']:.1f} s, {result['jobs']} jobs")

    best = {name: min(results, key=lambda r: r["wall_s"]) for name, results in rounds.items()}
    basic, joblib = best["basic"], best["joblib"]
    different = differences(basic["summaries"], joblib["summaries"])
    # Every round, not only the fastest, must agree with the first basic sweep.
    for results in rounds.values():
        for result in results:
            different += differences(rounds["basic"][0]["summaries"], result["summaries"])
    different = sorted(set(different))
    rows = []
    for name, result in best.items():
        rows.append(
            {
                "launcher": name,
                "overrides": " ".join(result["overrides"]),
                "wall_s": result["wall_s"],
                "wall_s_all_rounds": [r["wall_s"] for r in rounds[name]],
                "median_wall_s": statistics.median(r["wall_s"] for r in rounds[name]),
                "load_average_before": result["load_average_before"],
                "load_1min": result["load_average_before"][0],
                "jobs": result["jobs"],
                "s_per_job": result["wall_s"] / result["jobs"],
                "train_eval_s": result["train_s"] + result["eval_s"],
                "train_eval_share": (result["train_s"] + result["eval_s"]) / result["wall_s"],
                "speedup": basic["wall_s"] / result["wall_s"],
            }
        )
    n_jobs = args.n_jobs or preset_n_jobs()
    print(
        f"\nGrid: forgetbench -m {' '.join(grid)} ({basic['jobs']} jobs); Joblib n_jobs={n_jobs}\n"
    )
    print(
        common.table(
            rows,
            [
                ("launcher", "launcher", ""),
                ("overrides", "overrides", ""),
                ("wall_s", "wall s (best)", ",.1f"),
                ("median_wall_s", "median", ",.1f"),
                ("jobs", "jobs", "d"),
                ("s_per_job", "wall s per job", ".2f"),
                ("train_eval_s", "train + eval s (summed over runs)", ",.1f"),
                ("speedup", "speed-up vs basic", ".2f"),
                ("load_1min", "load before (1 min)", ".1f"),
            ],
        )
    )
    if args.repeats > 1:
        print(
            f"\nSpeed-up of the median wall times over {args.repeats} rounds: "
            f"{rows[0]['median_wall_s'] / rows[1]['median_wall_s']:.2f}"
        )
    print(
        "\nSame metrics and accuracy matrix for every job under both launchers: "
        + ("yes" if not different else "NO\n  " + "\n  ".join(different))
    )
    result = {
        "settings": {
            "grid": grid,
            "quick": args.quick,
            "joblib_n_jobs": n_jobs,
            "repeats": args.repeats,
            "compared": list(COMPARED),
            "warmup_s": warmup_s,
        },
        "rows": rows,
        "speedup": basic["wall_s"] / joblib["wall_s"],
        "speedup_of_medians": rows[0]["median_wall_s"] / rows[1]["median_wall_s"],
        "identical_metrics": not different,
        "differences": different,
    }
    print(f"\nWrote {common.write_result('grid-quick' if args.quick else 'grid', result)}")
    if not args.keep:
        for results in rounds.values():
            for r in results:
                shutil.rmtree(r["sweep"], ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
