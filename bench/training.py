"""Training throughput (samples/s) of each strategy against plain ``model.fit(x, y)``, in one run.

Same network (``conf/model``), optimizer (``conf/optimizer``), data (``conf/data``, larger
shards), batch size and ``steps_per_execution`` for every row; each row builds a fresh model,
trains one warm-up epoch (tracing) and then times ``--epochs`` epochs.

Rows:

- ``plain fit``: the network compiled with a sparse cross-entropy loss and ``accuracy``, one
  ``model.fit(x, y, epochs=E, shuffle=True)`` on the in-memory training arrays: the baseline.
- one row per strategy in ``conf/strategy/`` (a new strategy such as replay or EWC is picked up by
  its YAML file), trained the way a run trains it (``Trainer``, one ``fit`` per phase and epoch,
  strategy hooks) with evaluation only at the start and end (``eval.every_samples`` huge), so
  the row is the training cost; the Trainer's evaluation seconds are excluded.
- ``cross_shard, ShardModel.fit only``: the same feed and model without the Trainer (no
  evaluation callback), to separate the per-batch callback cost.
- ``cross_shard + evaluation every N``: the default evaluation interval; the evaluation cost is
  reported as a share of the training time of the row without evaluation.
- ``cross_shard, accumulation k``: exact accumulation (``weighted``) and Keras's own (``naive``).
- ``cross_shard + quadratic penalty``: an EWC-shaped term ``sum F (w - w*)^2`` added once per
  update through ``ShardModel.penalties``, a stand-in until the EWC strategy exists.

Usage: ``python bench/training.py [--settings 32:1 32:16 256:1] [--epochs 2]``.
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
from forgetbench.train.model import ShardModel  # noqa: E402
from forgetbench.train.trainer import Trainer  # noqa: E402

CONF = common.ROOT / "conf"
NO_EVAL = 10**15


def config(overrides: list[str]):
    """The real config tree composed with ``overrides``."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=overrides)


def strategy_names() -> list[str]:
    """Every strategy with a config file (replay and EWC join when their YAML exists)."""
    return sorted(p.stem for p in (CONF / "strategy").glob("*.yaml"))


class Bench:
    """Builds models, feeds and trainers from one composed config, as ``forgetbench.run`` does."""

    def __init__(self, cfg, epochs: int) -> None:
        self.cfg, self.epochs = cfg, epochs
        self.dataset = instantiate(cfg.data)
        self.batch_size = int(cfg.train.batch_size)
        self.spe = int(cfg.train.steps_per_execution)

    def fresh(self, strategy: str, remainder: str = "weighted", k: int = 1):
        """A new model and the phases of ``strategy`` (``conf/strategy/NAME.yaml``)."""
        keras.backend.clear_session()
        keras.utils.set_random_seed(int(self.cfg.seed))
        cfg = self.cfg
        policy = instantiate(config([f"remainder={remainder}"]).remainder)
        strat = instantiate(config([f"strategy={strategy}"]).strategy)
        net = instantiate(cfg.model)(self.dataset.train.feature_shape, self.dataset.num_classes)
        model = ShardModel(net, policy, accumulation_steps=k)
        keras_acc = {} if policy.exact or k == 1 else {"gradient_accumulation_steps": k}
        model.compile(optimizer=instantiate(cfg.optimizer, **keras_acc), steps_per_execution=self.spe)
        phases = strat.phases(
            self.dataset, seed=int(cfg.seed), batch_size=self.batch_size, policy=policy
        )
        return model, strat, phases

    def trainer(self, model, strat, phases, epochs: int, every_samples: int) -> Trainer:
        """A Trainer as in a run (boundaries of the sequential feed, held-out evaluator)."""
        policy = model.policy
        total = epochs * sum(p.feed.samples_per_epoch for p in phases)
        sizes = self.dataset.train.sizes
        boundaries = np.minimum(
            sequential_boundaries(sizes, epochs, self.batch_size, policy), total
        )
        boundaries[-1] = total
        if every_samples == NO_EVAL:
            boundaries = boundaries[-1:]
        return Trainer(
            model=model,
            strategy=strat,
            phases=phases,
            evaluator=Evaluator(self.dataset.heldout, batch_size=int(self.cfg.eval.batch_size)),
            epochs=epochs,
            every_samples=every_samples,
            boundaries=boundaries,
        )

    def run_trainer(self, strategy: str, every_samples: int = NO_EVAL, **kw) -> dict:
        """Warm-up epoch, then ``epochs`` timed epochs through the Trainer."""
        model, strat, phases = self.fresh(strategy, **kw)
        self.trainer(model, strat, phases, 1, every_samples).train()
        trainer = self.trainer(model, strat, phases, self.epochs, every_samples)
        seen = trainer.samples_seen
        start = time.perf_counter()
        train_seconds = trainer.train()
        wall = time.perf_counter() - start
        samples = trainer.samples_seen - seen
        return {
            "samples": samples,
            "seconds": train_seconds,
            "samples_per_s": samples / train_seconds,
            "wall_seconds": wall,
            "eval_seconds": trainer.eval_seconds,
            "evaluations": len(trainer.records) // self.dataset.heldout.num_shards,
        }

    def run_fit_only(self, strategy: str, penalty: bool = False, **kw) -> dict:
        """Warm-up epoch, then ``epochs`` timed epochs of bare ``ShardModel.fit`` per phase."""
        model, _, phases = self.fresh(strategy, **kw)
        if penalty:
            model.penalties.append(quadratic_penalty(model.net))

        def epochs(count):
            for phase in phases:
                for e in range(count):
                    model.fit(phase.feed.epoch(e), verbose=0, shuffle=False)
                    model.flush()

        epochs(1)
        seen = int(model.samples_seen.numpy())
        start = time.perf_counter()
        epochs(self.epochs)
        seconds = time.perf_counter() - start
        samples = int(model.samples_seen.numpy()) - seen
        return {"samples": samples, "seconds": seconds, "samples_per_s": samples / seconds}

    def run_plain(self) -> dict:
        """``model.fit(x, y)`` on the in-memory training arrays: the baseline."""
        keras.backend.clear_session()
        keras.utils.set_random_seed(int(self.cfg.seed))
        x, y = self.dataset.train.load_all()
        x, y = x.astype(np.float32), y.astype(np.int32)
        net = instantiate(self.cfg.model)(self.dataset.train.feature_shape, self.dataset.num_classes)
        net.compile(
            optimizer=instantiate(self.cfg.optimizer),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
            steps_per_execution=self.spe,
        )
        fit = dict(batch_size=self.batch_size, shuffle=True, verbose=0)
        net.fit(x, y, epochs=1, **fit)
        start = time.perf_counter()
        net.fit(x, y, epochs=self.epochs, **fit)
        seconds = time.perf_counter() - start
        samples = self.epochs * len(y)
        return {"samples": samples, "seconds": seconds, "samples_per_s": samples / seconds}


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
    """All rows at one batch size and ``steps_per_execution``."""
    cfg = config(
        [
            f"data.samples_per_shard={args.samples_per_shard}",
            f"paths.data_cache={common.SCRATCH / 'data'}",
            f"train.batch_size={batch_size}",
            f"train.steps_per_execution={spe}",
            "train.verbose=0",
        ]
    )
    bench = Bench(cfg, args.epochs)
    every = int(cfg.eval.every_samples)
    k = args.accumulation_steps
    plans = [("plain fit(x, y) in memory", bench.run_plain, {})]
    plans += [(name, bench.run_trainer, {"strategy": name}) for name in strategy_names()]
    plans += [
        ("cross_shard, ShardModel.fit only", bench.run_fit_only, {"strategy": "cross_shard"}),
        (
            f"cross_shard + evaluation every {every}",
            bench.run_trainer,
            {"strategy": "cross_shard", "every_samples": every},
        ),
        (
            f"cross_shard, exact accumulation k={k}",
            bench.run_trainer,
            {"strategy": "cross_shard", "k": k},
        ),
        (
            f"cross_shard, naive (Keras) accumulation k={k}",
            bench.run_trainer,
            {"strategy": "cross_shard", "k": k, "remainder": "naive"},
        ),
        (
            "cross_shard + quadratic penalty (EWC stand-in), fit only",
            bench.run_fit_only,
            {"strategy": "cross_shard", "penalty": True},
        ),
    ]
    rows = []
    for name, fn, kw in plans:
        result = fn(**kw)
        rows.append({"row": name, "batch_size": batch_size, "steps_per_execution": spe, **result})
        print(f"  {batch_size:>4} {spe:>3} {name}: {result['samples_per_s']:,.0f} samples/s")
    add_ratios(rows, every, k)
    return rows


def add_ratios(rows: list[dict], every: int, k: int) -> None:
    """Ratios within one setting: against plain fit, and the targeted pairs."""
    by = {r["row"]: r for r in rows}
    plain = by["plain fit(x, y) in memory"]["samples_per_s"]
    for r in rows:
        r["vs_plain_fit"] = r["samples_per_s"] / plain
    base = by["cross_shard"]
    by[f"cross_shard, exact accumulation k={k}"]["vs_cross_shard"] = (
        by[f"cross_shard, exact accumulation k={k}"]["samples_per_s"] / base["samples_per_s"]
    )
    evaluated = by[f"cross_shard + evaluation every {every}"]
    evaluated["eval_share"] = evaluated["eval_seconds"] / evaluated["seconds"]
    evaluated["eval_cost"] = (evaluated["wall_seconds"] - base["wall_seconds"]) / base["seconds"]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--settings",
        nargs="+",
        default=["32:1", "32:16", "256:1"],
        help="BATCH_SIZE:STEPS_PER_EXECUTION pairs",
    )
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--samples-per-shard", type=int, default=8000)
    parser.add_argument("--accumulation-steps", type=int, default=4)
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
        "epochs_timed": args.epochs,
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
                ("vs_plain_fit", "vs plain fit", ".2f"),
                ("vs_cross_shard", "vs cross_shard", ".2f"),
                ("eval_share", "eval s / train s", ".1%"),
            ],
        )
    )
    result = {"data": data, "rows": rows}
    print(f"\nWrote {common.write_result('training', result)}")
    return result


if __name__ == "__main__":
    main()
