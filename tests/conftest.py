"""Shared fixtures: tiny configs composed from the real config tree."""

from __future__ import annotations

import os
from pathlib import Path

import keras
import pytest
from hydra import compose, initialize_config_dir

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CONF = str(Path(__file__).resolve().parents[1] / "conf")

TINY = [
    "data.num_shards=3",
    "data.dim=5",
    "data.samples_per_shard=120",
    "data.heldout_per_shard=40",
    "model.hidden=[8]",
    "train.epochs=1",
    "train.batch_size=16",
    "train.verbose=0",
    "eval.every_samples=50",
]


def compose_config(overrides: list[str] | None = None):
    """The real config tree composed with ``overrides`` (no Hydra app, no chdir)."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("config", overrides=list(overrides or []))


@pytest.fixture
def keras_session():
    """A fresh Keras session for tests that build models.

    Engines (and their traced steps) are kept across tests, as across the runs of a sweep: each
    run starts from its own seeded weights and reset state (tests/test_extension_points.py
    checks that a reused engine gives a fresh engine's curves).
    """
    keras.backend.clear_session()
    yield
    keras.backend.clear_session()


@pytest.fixture
def tiny_cfg(tmp_path, keras_session):
    """Returns a function composing the tiny config (cache in ``tmp_path``) plus overrides."""

    def make(*overrides: str):
        return compose_config([*TINY, f"paths.data_cache={tmp_path / 'data'}", *overrides])

    return make


class SignalAtSetup:
    """A test plugin that sends the process SIGTERM when it is built (before any data)."""

    def __init__(self) -> None:
        import os
        import signal

        os.kill(os.getpid(), signal.SIGTERM)


class SignalAfterPhase:
    """A test plugin that sends the process a signal after a given phase (simulated preemption)."""

    def __init__(self, phase: int = 0, signum: int = 15) -> None:
        self.phase, self.signum = phase, signum

    def setup(self, ctx):
        pass

    def before_phase(self, ctx, phase):
        pass

    def after_phase(self, ctx, phase):
        if phase.index == self.phase:
            import os

            os.kill(os.getpid(), self.signum)

    def summary(self):
        return {}


class EvaluateAfterPhase:
    """A test plugin that evaluates the model as each phase hands it on (after ``fit``)."""

    def __init__(self) -> None:
        self.after: list[tuple[int, list[dict]]] = []

    def setup(self, ctx):
        pass

    def before_phase(self, ctx, phase):
        pass

    def after_phase(self, ctx, phase):
        self.after.append((ctx.samples_seen, ctx.evaluate()))

    def summary(self):
        return {}


def write_fake_run(folder: Path, strategy: str, seed: int, **extra) -> None:
    """A hand-made finished run folder (3 shards, evaluation every 50 samples), no training."""
    import json

    import numpy as np
    import pandas as pd

    folder.mkdir(parents=True)
    run_id = f"toy-{strategy}-weighted-seed{seed}"
    boundaries = [100, 200, 300]
    seen = np.arange(0, 301, 50)
    rows = []
    for j in range(3):
        # Shard j rises while trained; sequential forgets it afterwards, mixing does not.
        acc = np.clip(0.5 + (seen - 100 * j) / 200, 0.5, 0.9) if strategy == "joint" else None
        if acc is None:
            acc = np.where(seen >= 100 * (j + 1), 0.9, 0.5)
            if strategy == "sequential":
                acc = np.where(seen >= 100 * (j + 2) + 50 * seed, 0.3, acc)
        for t, (s, a) in enumerate(zip(seen, acc, strict=True)):
            rows.append(
                {
                    "run_id": run_id,
                    "dataset": "toy",
                    "strategy": strategy,
                    "remainder": "weighted",
                    "seed": seed,
                    "step": t * 5,
                    "samples_seen": int(s),
                    "epoch": 0,
                    "train_shard": min(int(s) // 100, 2) if strategy == "sequential" else None,
                    "eval_shard": j,
                    "accuracy": float(a) + 0.01 * seed,
                    "loss": 1.0 - float(a),
                    "n_eval": 20,
                }
            )
    curves = pd.DataFrame(rows)
    curves["train_shard"] = curves["train_shard"].astype("Int64")
    curves.to_parquet(folder / "curves.parquet", index=False)
    wide = curves.pivot_table(index="samples_seen", columns="eval_shard", values="accuracy")
    R = wide.loc[boundaries].to_numpy()
    forgotten = strategy == "sequential"
    onset = [
        {
            "eval_shard": j,
            "step": None,
            "samples_seen": 100 * (j + 2) + 50 * seed if forgotten and j == 0 else None,
            "samples_to_forget": 100 + 50 * seed if forgotten and j == 0 else None,
        }
        for j in range(3)
    ]
    spans = [(0, 100, 0), (100, 200, 1), (200, 300, 2)]
    summary = {
        "status": "completed",
        "run_id": run_id,
        "dataset": "toy",
        "strategy": strategy,
        "remainder": "weighted",
        "seed": seed,
        "metrics": {
            "acc": float(R[-1].mean()),
            "bwt": float(np.mean([R[-1, j] - R[j, j] for j in range(2)])),
            "fwt": 0.0,
            "forgetting": float(np.mean([R[:2, j].max() - R[-1, j] for j in range(2)])),
            **extra.pop("metrics", {}),
        },
        "accuracy_matrix": R.tolist(),
        "init_accuracy": wide.iloc[0].tolist(),
        "boundaries": boundaries,
        "onset": onset,
        "phases": [
            {
                "phase": p,
                "train_shard": shard if strategy == "sequential" else None,
                "start_samples": start,
                "end_samples": end,
            }
            for p, (start, end, shard) in enumerate(spans)
        ]
        if strategy == "sequential"
        else [{"phase": 0, "train_shard": None, "start_samples": 0, "end_samples": 300}],
        "timing": {"train_seconds": 1.0, "samples_per_second": 300.0},
        "config": {"seed": seed, "train": {"batch_size": 16, "epochs": 1}},
        **extra,
    }
    (folder / "summary.json").write_text(json.dumps(summary))


@pytest.fixture
def tiny_overrides():
    """The overrides of the tiny config (``TINY``), for commands run in a subprocess."""
    return list(TINY)


@pytest.fixture
def write_run():
    """``write_fake_run``: writes a hand-made finished run folder."""
    return write_fake_run


@pytest.fixture
def fake_sweep(tmp_path):
    """A sweep folder of hand-made runs: sequential and joint x seeds 0, 1; one diverged run,
    one unfinished folder. The sequential runs also report ``min_acc``.
    """
    sweep = tmp_path / "sweep"
    for strategy in ("sequential", "joint"):
        for seed in (0, 1):
            metrics = {"min_acc": 0.2 + 0.1 * seed} if strategy == "sequential" else {}
            write_fake_run(sweep / f"{strategy}-{seed}", strategy, seed, metrics=metrics)
    write_fake_run(sweep / "sequential-9", "sequential", 9)
    diverged = sweep / "sequential-9" / "summary.json"
    import json

    data = json.loads(diverged.read_text())
    data["status"] = "diverged"
    for key in ("metrics", "accuracy_matrix", "onset"):
        data.pop(key)
    diverged.write_text(json.dumps(data))
    (sweep / "unfinished" / ".hydra").mkdir(parents=True)
    return sweep
