"""Split Digits in forgetbench: the home side of ``run.py`` (run with forgetbench's .venv).

The protocol of ``protocol.py`` as forgetbench overrides (``OVERRIDES``): ``data=digits_split``
with a 0.3 held-out fraction, ``model.hidden=[100,100]``, Adam at 1e-3, batches of 32, 5 epochs
per shard, the conf defaults of ``replay`` (capacity 500, 32 replayed samples per batch, drawn
uniformly from a reservoir buffer) and ``ewc`` (lambda 100 in ``(lambda / 2) * sum F ...``), which
every run's ``summary.json`` is checked against; ``joint`` trains 5 epochs over all shards.
Evaluation runs after every shard only (``eval.every_samples`` huge, as Avalanche evaluates after
each experience) unless ``--eval-every N``. ``--init torch`` adds ``model.init=torch``
(PyTorch's initialisation, Avalanche's default) to the overrides, so both sides start alike;
by default the config's ``model.init`` (Keras's) is left as it is.

Modes (each prints one result line, ``protocol.RESULT_MARK`` + JSON):

- ``runs``: every strategy x seed in this process through the Python API
  (``forgetbench.run.run(cfg, folder)``, config composed with Hydra's compose API); per run
  ACC (``metrics.acc``) and ``timing.train_seconds + timing.eval_seconds``.
- ``grid``: the whole grid as one ``forgetbench -m ... strategy=A,B,.. seed=0,1,2`` command
  (basic launcher, sweep folder in a temporary folder), its wall time measured around the
  process; per-run figures read back from the sweep's summaries.
- ``single``: one run (``protocol.SINGLE``) as one ``forgetbench`` process, wall time measured
  around it.

The forgetbench measured is this checkout's, or the one at ``$FORGETBENCH_PEERS_ROOT`` (its
``src`` and ``conf``; ``run.py --forgetbench-ref`` exports a commit there). The digits cache
lives in ``$FORGETBENCH_BENCH_DIR/peers/data`` (default
``/tmp/forgetbench-bench``), written by the first run and shared by all later ones; run
folders are temporary and removed.

Usage: ``.venv/bin/python bench/peers/forgetbench_split_digits.py {runs,grid,single}
[--strategies ...] [--seeds 0 1 2] [--eval-every N] [--init keras|torch|he] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import common  # noqa: E402
import protocol  # noqa: E402

common.quiet_tensorflow()

FB_ROOT = Path(os.environ.get("FORGETBENCH_PEERS_ROOT") or protocol.ROOT).resolve()
PER_EXPERIENCE = 10**12  # eval.every_samples that never fires: evaluation at shard ends only
SCRATCH = common.SCRATCH / "peers"
DATA_CACHE = SCRATCH / "data"
OVERRIDES = [
    "data=digits_split",
    f"data.heldout_fraction={protocol.HELDOUT_FRACTION}",
    f"data.seed={protocol.SPLIT_SEED}",
    f"model.hidden=[{','.join(str(h) for h in protocol.HIDDEN)}]",
    "optimizer=adam",
    f"optimizer.learning_rate={protocol.LEARNING_RATE}",
    f"train.batch_size={protocol.BATCH_SIZE}",
    f"train.epochs={protocol.EPOCHS}",
    f"eval.batch_size={protocol.EVAL_BATCH_SIZE}",
    "train.verbose=0",
]
# What each strategy's resolved config must hold (conf defaults; a sweep cannot set them per
# strategy): refused otherwise, so a changed default cannot silently change the protocol.
EXPECTED = {
    "replay": {
        "strategy.plugins.replay.capacity": protocol.REPLAY_CAPACITY,
        "strategy.plugins.replay.size": protocol.REPLAY_SIZE,
    },
    "ewc": {"strategy.plugins.ewc.lam": protocol.EWC_LAMBDA},
}


def overrides(eval_every: int) -> list[str]:
    """The protocol's overrides with an evaluation interval."""
    return [*OVERRIDES, f"eval.every_samples={eval_every}"]


def environment() -> dict:
    """Subprocess environment: this checkout's package, the shared digits cache."""
    src = str(FB_ROOT / "src")
    path = os.pathsep.join([src, *filter(None, [os.environ.get("PYTHONPATH")])])
    return protocol.quiet_env(PYTHONPATH=path, FORGETBENCH_DATA_CACHE=str(DATA_CACHE))


def lookup(config: dict, dotted: str):
    """``config["a"]["b"]`` for ``"a.b"`` (``None`` if absent)."""
    node = config
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def per_run(summary: dict) -> dict:
    """The figures of one run's summary; refuses a run off the protocol."""
    strategy = summary["strategy"]
    config = summary["config"]
    for key, value in EXPECTED.get(strategy, {}).items():
        if lookup(config, key) != value:
            raise SystemExit(f"{strategy}: {key}={lookup(config, key)!r}, protocol wants {value!r}")
    if summary["status"] != "completed":
        raise SystemExit(f"{strategy} seed {summary['seed']}: run {summary['status']}")
    timing = summary["timing"]
    return {
        "strategy": strategy,
        "seed": int(summary["seed"]),
        "acc": float(summary["metrics"]["acc"]),
        "accuracy_matrix": summary["accuracy_matrix"],
        "train_s": float(timing["train_seconds"]),
        "eval_s": float(timing["eval_seconds"]),
        "train_eval_s": float(timing["train_seconds"] + timing["eval_seconds"]),
    }


def data_digest(cfg) -> dict:
    """``protocol.digest`` of the shards forgetbench trains and evaluates on."""
    import numpy as np
    from hydra.utils import instantiate

    dataset = instantiate(cfg.data)

    def parts(store):
        x, y = store.load_all()
        cuts = np.cumsum(store.sizes)[:-1]
        return list(zip(np.split(x, cuts), np.split(y, cuts), strict=True))

    return {
        "train": protocol.digest(parts(dataset.train)),
        "heldout": protocol.digest(parts(dataset.heldout)),
    }


def api_runs(args) -> dict:
    """Every strategy x seed through ``forgetbench.run.run``, in this process."""
    start = time.perf_counter()
    sys.path.insert(0, str(FB_ROOT / "src"))
    from hydra import compose, initialize_config_dir

    import forgetbench
    from forgetbench.run import run

    import_s = time.perf_counter() - start
    if not Path(forgetbench.__file__).resolve().is_relative_to(FB_ROOT / "src"):
        raise SystemExit(f"imported {forgetbench.__file__}, not the one under {FB_ROOT}")
    base = [*overrides(args.eval_every), f"paths.data_cache={DATA_CACHE}"]

    def config(extra: list[str]):
        with initialize_config_dir(config_dir=str(FB_ROOT / "conf"), version_base="1.3"):
            return compose("config", overrides=[*base, *extra])

    digest = data_digest(config([]))
    SCRATCH.mkdir(parents=True, exist_ok=True)
    runs, runs_start = [], time.perf_counter()
    for name in args.strategies:
        for seed in args.seeds:
            folder = Path(tempfile.mkdtemp(prefix="run-", dir=SCRATCH))
            try:
                result = per_run(run(config([f"strategy={name}", f"seed={seed}"]), folder))
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            runs.append(result)
            print(
                f"forgetbench {name} seed {seed}: ACC {result['acc']:.3f}, "
                f"train+eval {result['train_eval_s']:.2f} s",
                flush=True,
            )
    return {
        "mode": "runs",
        "digest": digest,
        "import_s": import_s,
        "runs_s": time.perf_counter() - runs_start,
        "runs": runs,
    }


def cli(extra: list[str], folder_key: str, log_name: str) -> tuple[float, Path]:
    """Runs ``forgetbench EXTRA`` (this interpreter, this checkout) into a temporary folder."""
    SCRATCH.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{log_name}-", dir=SCRATCH))
    cmd = [sys.executable, "-m", "forgetbench.cli", *extra, f"{folder_key}={folder}"]
    log = SCRATCH / f"{log_name}.log"
    seconds, _ = protocol.timed_process(cmd, log, env=environment(), cwd=FB_ROOT)
    return seconds, folder


def read_runs(folder: Path) -> list[dict]:
    """Every run summary under ``folder``, as :func:`per_run` figures."""
    paths = sorted(folder.glob("**/summary.json"))
    return [per_run(json.loads(p.read_text())) for p in paths]


def grid(args) -> dict:
    """The whole grid as one ``forgetbench -m`` command (basic launcher), timed."""
    sweep = [
        "-m",
        *overrides(args.eval_every),
        f"strategy={','.join(args.strategies)}",
        f"seed={','.join(str(s) for s in args.seeds)}",
        "hydra/launcher=basic",
    ]
    seconds, folder = cli(sweep, "hydra.sweep.dir", "grid")
    try:
        runs = read_runs(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if len(runs) != len(args.strategies) * len(args.seeds):
        raise SystemExit(f"grid: {len(runs)} summaries, expected a run per strategy and seed")
    return {"mode": "grid", "command": ["forgetbench", *sweep], "wall_s": seconds, "runs": runs}


def single(args) -> dict:
    """One run (the first strategy and seed) as one ``forgetbench`` process, timed."""
    line = [*overrides(args.eval_every), f"strategy={args.strategies[0]}", f"seed={args.seeds[0]}"]
    seconds, folder = cli(line, "hydra.run.dir", "single")
    try:
        runs = read_runs(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"mode": "single", "command": ["forgetbench", *line], "wall_s": seconds, "runs": runs}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["runs", "grid", "single"])
    parser.add_argument("--strategies", nargs="+", default=None)
    parser.add_argument("--seeds", nargs="+", type=int, default=None)
    parser.add_argument(
        "--eval-every",
        type=int,
        default=PER_EXPERIENCE,
        help="eval.every_samples (default: after every shard only)",
    )
    parser.add_argument(
        "--init",
        choices=["keras", "torch", "he"],
        default=None,
        help="model.init (default: conf's)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    if args.init is not None:  # only then: a checkout without the option still runs
        OVERRIDES.append(f"model.init={args.init}")
    is_single = args.mode == "single"
    args.strategies = args.strategies or (
        [protocol.SINGLE[0]] if is_single else list(protocol.STRATEGIES)
    )
    args.seeds = args.seeds or ([protocol.SINGLE[1]] if is_single else list(protocol.SEEDS))
    result = {"runs": api_runs, "grid": grid, "single": single}[args.mode](args)
    result = {
        "side": "forgetbench",
        "root": str(FB_ROOT),
        "eval_every_samples": args.eval_every,
        **result,
    }
    return protocol.emit(result, args.json)


if __name__ == "__main__":
    main()
