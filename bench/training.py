"""Training throughput (samples/s) of each strategy against plain ``model.fit(x, y)``, in one run.

Same network (``conf/model``), optimizer (``conf/optimizer``), data (``conf/data``, larger
shards), batch size and ``steps_per_execution`` for every row; each row builds a fresh model,
trains one warm-up epoch (tracing) and then times ``--epochs`` epochs.

Rows:

- ``plain fit``: the network compiled with a sparse cross-entropy loss and ``accuracy``, one
  ``model.fit(x, y, epochs=E, shuffle=True)`` on the in-memory training arrays: the baseline.
- one row per strategy in ``conf/strategy/`` (a new strategy such as replay or EWC is picked up by
  its YAML file), trained the way a run trains it (``Trainer``: the engine's compiled loop,
  strategy hooks) with evaluation only at the start and end (``eval.every_samples`` huge), so
  the row is the training cost; the Trainer's evaluation seconds are excluded.
- ``cross_shard, engine only``: the same feed and engine without the Trainer
  (``Engine.train_epoch``), to separate the Trainer's own cost.
- ``cross_shard + evaluation every N``: the default evaluation interval; the evaluation cost is
  reported as a share of the training time of the row without evaluation.
- ``cross_shard, accumulation k``: exact accumulation (``weighted``) and Keras's own (``naive``).
- ``cross_shard + quadratic penalty``: an EWC-shaped term ``sum F (w - w*)^2`` added once per
  update through the context's ``add_penalty`` (constant ``F`` and ``w*``).

- ``steps only``: for Trainer rows, samples/s with the strategy's phase hooks (replay's buffer
  updates, EWC's Fisher estimates, A-GEM's memory writes) left out of the time: the train step's
  own cost. ``ewc``, ``si``, ``lwf``, ``agem``, ``der`` and ``derpp`` are compared with
  ``sequential`` on that basis (targets: LwF at most 1.5x a sequential step, SI 1.3x, A-GEM
  2.5x, DER 2.2x, DER++ 3x), ``replay_ewc`` with ``replay``. ``gdumb`` trains on its memory in
  phase hooks only: its row is the cost of the stream passing plus that training. ``agem``
  draws the paper's 256 reference samples per update; the row ``agem, reference_size = batch
  size`` draws as many as the batch holds.

- ``pnn, N columns, engine only``: progressive networks (``strategy=pnn``) with ``N`` columns
  (built as a run builds them, one per phase), ``Engine.train_epoch`` on the last column's shard;
  ``step_cost_vs_sequential`` is the time per sample over that of ``sequential, engine only``
  (the plain network on the same shard), paired by round. ``pnn`` has no Trainer row: a run
  replaces its network, so its engine cannot start a second run.

``steps_per_execution`` (the second number of a setting) is plain ``fit``'s: the engine runs
every batch up to the next evaluation point in one compiled call whatever it is.

Usage: ``python bench/training.py [--settings 32:1 32:16 256:1] [--epochs 2] [--only ewc]
[--rounds 7] [--name training]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

common.quiet_tensorflow()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from forgetbench.eval.evaluator import Evaluator  # noqa: E402
from forgetbench.strategies.base import sequential_boundaries  # noqa: E402
from forgetbench.train.engine import Engine  # noqa: E402
from forgetbench.train.trainer import Trainer  # noqa: E402

tf.get_logger().setLevel("ERROR")  # each row's new Evaluator traces anew: expected here
CONF = common.ROOT / "conf"
NO_EVAL = 10**15
PLAIN = "plain fit(x, y) in memory"
FIT_ONLY = "cross_shard, engine only (no Trainer)"
EVAL = "cross_shard + evaluation every {} samples"
EXACT = "cross_shard, exact accumulation k={} (weighted)"
NAIVE = "cross_shard, Keras accumulation k={} (naive)"
PENALTY = "cross_shard + quadratic penalty (EWC-shaped), engine only"
AGEM_BATCH = "agem, reference_size = batch size"
PNN = "pnn, {} columns, engine only"
SEQUENTIAL_ENGINE = "sequential, engine only"
OWN_ROWS = {"pnn"}  # strategies measured by rows of their own, not a Trainer row


def config(overrides: list[str]):
    """The real config tree composed with ``overrides``."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=overrides)


def strategy_names() -> list[str]:
    """Every strategy with a config file (replay and EWC join when their YAML exists)."""
    return sorted(p.stem for p in (CONF / "strategy").glob("*.yaml"))


class Bench:
    """Builds models, feeds and trainers from one composed config, as ``forgetbench.run`` does.

    Each ``*_row`` method builds a fresh model, runs one warm-up epoch (tracing) and returns a
    function that trains ``epochs`` more epochs and returns ``{"samples", "seconds", ...}``;
    rows are timed in interleaved rounds, so a burst of other load hits every row alike.
    """

    def __init__(self, cfg, epochs: int, spe: int) -> None:
        self.cfg, self.epochs = cfg, epochs
        self.dataset = instantiate(cfg.data)
        self.batch_size = int(cfg.train.batch_size)
        self.spe = spe  # plain fit's steps_per_execution

    def fresh(self, strategy: str, remainder: str = "weighted", k: int = 1, overrides: tuple = ()):
        """A new model and the phases of ``strategy`` (``conf/strategy/NAME.yaml``)."""
        keras.utils.set_random_seed(int(self.cfg.seed))
        cfg = self.cfg
        policy = instantiate(config([f"remainder={remainder}"]).remainder)
        strat = instantiate(config([f"strategy={strategy}", *overrides]).strategy)
        net = instantiate(cfg.model)(self.dataset.train.feature_shape, self.dataset.num_classes)
        keras_acc = {} if policy.exact or k == 1 else {"gradient_accumulation_steps": k}
        model = Engine(
            net, lambda: instantiate(cfg.optimizer, **keras_acc), policy, accumulation_steps=k
        )
        phases = strat.phases(
            self.dataset, seed=int(cfg.seed), batch_size=self.batch_size, policy=policy
        )
        return model, strat, phases

    def _start_run(self, model) -> None:
        """Resets ``model`` for a new round as a run does (seed, shapes, shard classes)."""
        data = self.dataset.train
        model.start_run(
            model.net,
            seed=int(self.cfg.seed),
            feature_shape=data.feature_shape,
            num_classes=self.dataset.num_classes,
            shard_classes=[shard.classes for shard in data.shards],
        )

    def trainer(self, model, strat, phases, evaluator, every_samples: int, epochs: int):
        """A Trainer as in a run (boundaries of the sequential feed, held-out evaluator)."""
        total = epochs * sum(p.feed.samples_per_epoch for p in phases)
        sizes = self.dataset.train.sizes
        boundaries = sequential_boundaries(sizes, epochs, self.batch_size, model.policy)
        boundaries = np.minimum(boundaries, total)
        boundaries[-1] = total
        if every_samples == NO_EVAL:
            boundaries = boundaries[-1:]
        self._start_run(model)
        return Trainer(
            engine=model,
            strategy=strat,
            phases=phases,
            evaluator=evaluator,
            epochs=epochs,
            every_samples=every_samples,
            boundaries=boundaries,
        )

    def trainer_row(self, strategy: str, every_samples: int = NO_EVAL, **kw):
        """Training through the ``Trainer`` (hooks, evaluation schedule), as a run does.

        Plugins' ``setup`` runs again each round (a fresh buffer; for EWC, variables the
        already-traced step does not see): the per-step cost stays that of one run.
        """
        model, strat, phases = self.fresh(strategy, **kw)
        evaluator = Evaluator(self.dataset.heldout, batch_size=int(self.cfg.eval.batch_size))
        hooks = time_hooks(strat)
        self.trainer(model, strat, phases, evaluator, every_samples, 1).train()

        def run() -> dict:
            trainer = self.trainer(model, strat, phases, evaluator, every_samples, self.epochs)
            seen = trainer.samples_seen
            hooks[0] = 0.0
            start = time.perf_counter()
            seconds = trainer.train()
            wall = time.perf_counter() - start
            return {
                "samples": trainer.samples_seen - seen,
                "seconds": seconds,
                "wall_seconds": wall,
                "hook_seconds": hooks[0],
                "eval_seconds": trainer.eval_seconds,
                "evaluations": len(trainer.records) // self.dataset.heldout.num_shards,
            }

        return run

    def fit_row(self, strategy: str, penalty: bool = False, **kw):
        """Bare ``Engine.train_epoch`` per phase and epoch: no Trainer, no evaluation."""
        model, _, phases = self.fresh(strategy, **kw)
        if penalty:
            model.ctx.add_penalty("quadratic", quadratic_penalty(model.net))

        def epochs(count: int) -> dict:
            seen = int(model.samples_seen.numpy())
            start = time.perf_counter()
            for phase in phases:
                for e in range(count):
                    model.train_epoch(phase.feed, e)
            seconds = time.perf_counter() - start
            return {"samples": int(model.samples_seen.numpy()) - seen, "seconds": seconds}

        epochs(1)
        return lambda: epochs(self.epochs)

    def pnn_row(self, columns: int):
        """Engine steps of progressive networks with ``columns`` columns on the last one's shard."""
        model, strat, phases = self.fresh("pnn")
        plugin = strat.plugins["pnn"]
        self._start_run(model)
        plugin.setup(model.ctx)
        for phase in phases[:columns]:
            plugin.before_phase(model.ctx, phase)
        return self._epochs_of(model, phases[columns - 1].feed)

    def sequential_row(self, shard: int = 0):
        """Engine steps of the plain network on one shard (the baseline of the PNN rows)."""
        model, _, phases = self.fresh("sequential")
        return self._epochs_of(model, phases[shard].feed)

    def _epochs_of(self, model, feed):
        def epochs(count: int) -> dict:
            seen = int(model.samples_seen.numpy())
            start = time.perf_counter()
            for e in range(count):
                model.train_epoch(feed, e)
            seconds = time.perf_counter() - start
            return {"samples": int(model.samples_seen.numpy()) - seen, "seconds": seconds}

        epochs(1)  # warm-up: tracing
        return lambda: epochs(self.epochs)

    def plain_row(self):
        """``model.fit(x, y, epochs=E)`` on the in-memory training arrays: the baseline."""
        keras.utils.set_random_seed(int(self.cfg.seed))
        data = self.dataset
        x, y = data.train.load_all()
        x, y = x.astype(np.float32), y.astype(np.int32)
        net = instantiate(self.cfg.model)(data.train.feature_shape, data.num_classes)
        net.compile(
            optimizer=instantiate(self.cfg.optimizer),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
            steps_per_execution=self.spe,
        )
        fit = {"batch_size": self.batch_size, "shuffle": True, "verbose": 0}
        net.fit(x, y, epochs=1, **fit)

        def run() -> dict:
            start = time.perf_counter()
            net.fit(x, y, epochs=self.epochs, **fit)
            return {"samples": self.epochs * len(y), "seconds": time.perf_counter() - start}

        return run


def time_hooks(strategy) -> list[float]:
    """Wraps the phase hooks (replay's buffer, EWC's Fisher) to sum their wall seconds.

    The hooks run between ``fit`` calls, so ``seconds - hook_seconds`` is the train steps' time.
    """
    total = [0.0]
    for name in ("before_phase", "after_phase"):
        hook = getattr(strategy, name)

        def timed(*args, _hook=hook, **kwargs):
            start = time.perf_counter()
            try:
                return _hook(*args, **kwargs)
            finally:
                total[0] += time.perf_counter() - start

        setattr(strategy, name, timed)
    return total


def quadratic_penalty(net: keras.Model, strength: float = 1e-3):
    """An EWC-shaped penalty ``strength * sum F (w - w*)^2`` (``F`` ones, ``w*`` the start)."""
    anchors = [tf.constant(v.numpy()) for v in net.trainable_variables]
    fisher = [tf.ones_like(a) for a in anchors]

    def penalty():
        return strength * tf.add_n(
            [
                tf.reduce_sum(f * tf.square(v - a))
                for v, a, f in zip(net.trainable_variables, anchors, fisher, strict=True)
            ]
        )

    return penalty


def measure_setting(args, batch_size: int, spe: int) -> list[dict]:
    """All rows at one batch size and ``steps_per_execution``, in interleaved rounds."""
    cfg = config(
        [
            f"data.samples_per_shard={args.samples_per_shard}",
            f"paths.data_cache={common.SCRATCH / 'data'}",
            f"train.batch_size={batch_size}",
            "train.verbose=0",
        ]
    )
    bench = Bench(cfg, args.epochs, spe)
    every, k = int(cfg.eval.every_samples), args.accumulation_steps
    plans = [(PLAIN, bench.plain_row, {})]
    names = [name for name in strategy_names() if name not in OWN_ROWS]
    plans += [(name, bench.trainer_row, {"strategy": name}) for name in names]
    small_reference = f"strategy.plugins.agem.reference_size={batch_size}"
    plans.append(
        (AGEM_BATCH, bench.trainer_row, {"strategy": "agem", "overrides": (small_reference,)})
    )
    plans += [
        (FIT_ONLY, bench.fit_row, {"strategy": "cross_shard"}),
        (
            EVAL.format(every),
            bench.trainer_row,
            {"strategy": "cross_shard", "every_samples": every},
        ),
        (EXACT.format(k), bench.trainer_row, {"strategy": "cross_shard", "k": k}),
        (
            NAIVE.format(k),
            bench.trainer_row,
            {"strategy": "cross_shard", "k": k, "remainder": "naive"},
        ),
        (PENALTY, bench.fit_row, {"strategy": "cross_shard", "penalty": True}),
        (SEQUENTIAL_ENGINE, bench.sequential_row, {}),
    ]
    if "pnn" in strategy_names():
        shards = bench.dataset.train.num_shards
        plans += [(PNN.format(c), bench.pnn_row, {"columns": c}) for c in range(1, shards + 1)]
    if args.only:  # a subset, with the rows the ratios need
        needed = {PLAIN, "cross_shard", "sequential", "replay", SEQUENTIAL_ENGINE}
        plans = [p for p in plans if p[0] in needed or any(o in p[0] for o in args.only)]
    runs = {}
    for name, make, kw in plans:
        runs[name] = make(**kw)
    results = {name: [] for name in runs}
    for r in range(args.rounds):
        for name, run in runs.items():
            results[name].append(run())
        print(f"  batch {batch_size}, spe {spe}: round {r + 1}/{args.rounds} done", flush=True)
    rows = [summarise(name, batch_size, spe, rounds) for name, rounds in results.items()]
    add_ratios(rows, every, k)
    return rows


def summarise(name: str, batch_size: int, spe: int, rounds: list[dict]) -> dict:
    """Best and median samples/s over the rounds, and the evaluation share."""
    rates = [r["samples"] / r["seconds"] for r in rounds]
    row = {
        "row": name,
        "batch_size": batch_size,
        "steps_per_execution": spe,
        "samples_per_round": rounds[0]["samples"],
        "samples_per_s": max(rates),
        "median_samples_per_s": float(np.median(rates)),
        "rounds": len(rounds),
        "round_samples_per_s": rates,
    }
    if "hook_seconds" in rounds[0]:
        steps = [r["samples"] / (r["seconds"] - r["hook_seconds"]) for r in rounds]
        row["step_samples_per_s"] = max(steps)
        row["round_step_samples_per_s"] = steps
        row["hook_seconds"] = float(np.median([r["hook_seconds"] for r in rounds]))
    if "eval_seconds" in rounds[0]:
        row["eval_seconds"] = float(np.median([r["eval_seconds"] for r in rounds]))
        row["evaluations"] = rounds[0]["evaluations"]
        row["eval_share"] = float(np.median([r["eval_seconds"] / r["seconds"] for r in rounds]))
    return row


def paired_ratio(row: dict, base: dict, key: str = "round_samples_per_s") -> float:
    """Median over rounds of ``row``'s rate over ``base``'s in the same round.

    Rows of one round run back to back, so a burst of other load on the machine hits both
    sides of a ratio alike; the median drops the rounds where it did not.
    """
    return float(np.median(np.asarray(row[key]) / np.asarray(base[key])))


def add_ratios(rows: list[dict], every: int, k: int) -> None:
    """Ratios within one setting (paired by round): against plain fit, and the targeted pairs."""
    by = {r["row"]: r for r in rows}
    for r in rows:
        r["vs_plain_fit"] = paired_ratio(r, by[PLAIN])
    for name in (EXACT.format(k), NAIVE.format(k), EVAL.format(every), FIT_ONLY):
        if name not in by:
            continue
        by[name]["vs_cross_shard"] = paired_ratio(by[name], by["cross_shard"])
    # A plugin's train step against its feed's without it, phase hooks (replay's buffer
    # updates, EWC's Fisher estimates) excluded from both: the per-step price of the plugin.
    methods = ("ewc", "si", "lwf", "agem", AGEM_BATCH, "der", "derpp")
    pairs = [(name, "sequential") for name in methods]
    for name, base_name in [*pairs, ("replay_ewc", "replay")]:
        if name in by and base_name in by:
            by[name]["step_vs_" + base_name] = paired_ratio(
                by[name], by[base_name], "round_step_samples_per_s"
            )
    for r in rows:  # time per sample against the plain network's on one shard
        if r["row"].startswith("pnn, ") and SEQUENTIAL_ENGINE in by:
            r["step_cost_vs_sequential"] = paired_ratio(by[SEQUENTIAL_ENGINE], r)
    for r in rows:  # the other Trainer rows evaluate only at the start and the end
        if r["row"] != EVAL.format(every):
            r.pop("eval_share", None)
    if EVAL.format(every) in by:  # evaluation cost is linear in the number of evaluations
        row = by[EVAL.format(every)]
        row["every_samples_for_10pct"] = every * row["eval_share"] / 0.10


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--settings",
        nargs="+",
        default=["32:1", "32:16", "256:1"],
        help="BATCH_SIZE:STEPS_PER_EXECUTION pairs",
    )
    parser.add_argument("--epochs", type=int, default=2, help="epochs per timed round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--samples-per-shard", type=int, default=8000)
    parser.add_argument("--accumulation-steps", type=int, default=4)
    parser.add_argument(
        "--only",
        nargs="+",
        default=[],
        help="measure only the rows whose name contains one of these (and the baselines)",
    )
    parser.add_argument(
        "--name", default="training", help="results/bench/NAME.json (default: training)"
    )
    args = parser.parse_args(argv)
    rows = []
    for setting in args.settings:
        batch_size, spe = (int(v) for v in setting.split(":"))
        rows += measure_setting(args, batch_size, spe)
    cfg = config([f"data.samples_per_shard={args.samples_per_shard}"])
    data = {
        "dataset": "synthetic (conf/data/synthetic.yaml)",
        "samples_per_shard": args.samples_per_shard,
        "num_shards": int(cfg.data.num_shards),
        "dim": int(cfg.data.dim),
        "heldout_per_shard": int(cfg.data.heldout_per_shard),
        "model": OmegaConf.to_container(cfg.model),
        "optimizer": OmegaConf.to_container(cfg.optimizer),
        "epochs_per_round": args.epochs,
        "rounds": args.rounds,
        "eval_every_samples": int(cfg.eval.every_samples),
    }
    print()
    print(
        common.table(
            rows,
            [
                ("batch_size", "batch", "d"),
                ("steps_per_execution", "spe", "d"),
                ("row", "training", ""),
                ("samples_per_s", "samples/s", ",.0f"),
                ("median_samples_per_s", "median", ",.0f"),
                ("vs_plain_fit", "vs plain fit", ".2f"),
                ("vs_cross_shard", "vs cross_shard", ".2f"),
                ("eval_share", "eval s / train s", ".1%"),
                ("every_samples_for_10pct", "interval for 10 %", ",.0f"),
                ("step_samples_per_s", "steps only samples/s", ",.0f"),
                ("hook_seconds", "hooks s", ".3f"),
                ("step_vs_sequential", "steps vs sequential", ".2f"),
                ("step_vs_replay", "steps vs replay", ".2f"),
                ("step_cost_vs_sequential", "step cost vs sequential", ".2f"),
            ],
        )
    )
    result = {"data": data, "rows": rows}
    print(f"\nWrote {common.write_result(args.name, result)}")
    return result


if __name__ == "__main__":
    main()
