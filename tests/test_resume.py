"""Checkpoints at phase ends: an interrupted run resumes to the uninterrupted run's results."""

import json
import logging
import shutil
from pathlib import Path

import keras
import pandas as pd
import pytest

from forgetbench import checkpoint as checkpoint_module
from forgetbench.checkpoint import CHECKPOINT, CheckpointMismatchError
from forgetbench.run import run
from forgetbench.train.trainer import Trainer

STRATEGIES = sorted(
    p.stem for p in (Path(__file__).parents[1] / "conf" / "strategy").glob("*.yaml")
)
# In the fast suite; every strategy runs under `make test-slow` (PNN's per-column retracing makes
# it the slowest, about 20 s a run here).
FAST_AT_BOUNDARY = {"sequential", "replay", "ewc", "lwf", "gdumb", "joint"}
FAST_WITHIN_PHASE = {"sequential", "replay", "agem", "cross_shard"}


def strategies(fast: set[str]) -> list:
    return [s if s in fast else pytest.param(s, marks=pytest.mark.slow) for s in STRATEGIES]


NOT_COMPARED = ("timing", "peak_memory_mb", "peak_rss_mb", "resumed")  # wall clock, memory
FAST = ["output.run_figure=false", "checkpoint.min_interval_s=0"]  # every phase end
SMALL = {  # memories and their training scaled down to the tiny data
    "gdumb": ["strategy.plugins.gdumb.capacity=60", "strategy.plugins.gdumb.epochs=2"],
    "agem": ["strategy.plugins.agem.per_shard=20", "strategy.plugins.agem.reference_size=16"],
    "pnn": ["eval.scenario=task_incremental"],
}


def interrupt_after_checkpoint(monkeypatch, phase: int) -> None:
    """Interrupts the run right after the checkpoint of ``phase`` is written (a phase boundary)."""
    write = checkpoint_module.write_checkpoint

    def write_then_stop(out_dir, trainer, index, identity, **within):
        folder = write(out_dir, trainer, index, identity, **within)
        if index == phase:
            raise KeyboardInterrupt(f"test: stopped after a checkpoint in phase {index}")
        return folder

    monkeypatch.setattr(checkpoint_module, "write_checkpoint", write_then_stop)


def interrupt_mid_phase(monkeypatch, phase: int) -> None:
    """Interrupts the run at its first evaluation inside ``phase`` (not at a boundary)."""
    evaluate = Trainer.evaluate

    def evaluate_then_stop(self, seen=None):
        evaluate(self, seen)
        inside = self._phase is not None and self._phase.index == phase
        at = self.samples_seen
        if inside and at > 0 and at not in set(self.boundaries.tolist()):
            raise KeyboardInterrupt(f"test: stopped inside phase {phase}")

    monkeypatch.setattr(Trainer, "evaluate", evaluate_then_stop)


def comparable(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in NOT_COMPARED}


def assert_same_results(done: Path, reference: Path) -> None:
    pd.testing.assert_frame_equal(
        pd.read_parquet(done / "curves.parquet"), pd.read_parquet(reference / "curves.parquet")
    )
    a = json.loads((done / "summary.json").read_text())
    b = json.loads((reference / "summary.json").read_text())
    assert comparable(a) == comparable(b)
    for name in ("matrix.parquet", "train_log.parquet"):
        if (reference / name).exists():
            pd.testing.assert_frame_equal(
                pd.read_parquet(done / name), pd.read_parquet(reference / name)
            )
    if (reference / "model.keras").exists():
        mine = keras.saving.load_model(done / "model.keras").get_weights()
        theirs = keras.saving.load_model(reference / "model.keras").get_weights()
        assert len(mine) == len(theirs)
        for x, y in zip(mine, theirs, strict=True):
            assert x.tobytes() == y.tobytes()


@pytest.mark.parametrize("strategy", strategies(FAST_AT_BOUNDARY))
def test_resumed_run_equals_the_uninterrupted_one(tiny_cfg, tmp_path, monkeypatch, strategy):
    cfg = tiny_cfg(f"strategy={strategy}", *FAST, *SMALL.get(strategy, []))
    reference = tmp_path / "reference"
    run(cfg, reference)
    out = tmp_path / "interrupted"
    multi_phase = strategy not in ("cross_shard", "joint")  # one phase: no checkpoint
    if multi_phase:
        with monkeypatch.context() as patch:  # stopped at the boundary after phase 0
            interrupt_after_checkpoint(patch, phase=0)
            with pytest.raises(KeyboardInterrupt):
                run(cfg, out)
        assert (out / CHECKPOINT).is_dir()
    with monkeypatch.context() as patch:  # resumed, then stopped inside phase 2 (or the only one)
        interrupt_mid_phase(patch, phase=2 if multi_phase else 0)
        with pytest.raises(KeyboardInterrupt):
            run(cfg, out)
    if multi_phase:
        manifest = json.loads((out / CHECKPOINT / "manifest.json").read_text())
        assert manifest["phase"] == 1
    summary = run(cfg, out)  # resumed after phase 1, to the end
    assert_same_results(out, reference)
    assert not (out / CHECKPOINT).exists()  # dropped once finished (the default)
    if multi_phase:
        assert summary["resumed"]["from_phase"] == 1
        assert summary["resumed"]["samples_seen"] == manifest["samples_seen"] > 0
    else:
        assert summary["resumed"] is None


@pytest.mark.parametrize("strategy", strategies(FAST_WITHIN_PHASE))
def test_run_resumed_within_a_phase_equals_the_uninterrupted_one(
    tiny_cfg, tmp_path, monkeypatch, strategy
):
    epochs = ["train.epochs=2", "checkpoint.every=0", "checkpoint.every_epochs=1"]
    cfg = tiny_cfg(f"strategy={strategy}", *FAST, *epochs, *SMALL.get(strategy, []))
    reference = tmp_path / "reference"
    run(cfg, reference)
    out = tmp_path / "interrupted"
    phase = 1 if strategy not in ("cross_shard", "joint") else 0
    with monkeypatch.context() as patch:  # stopped after the checkpoint of its first epoch
        interrupt_after_checkpoint(patch, phase=phase)
        with pytest.raises(KeyboardInterrupt):
            run(cfg, out)
    manifest = json.loads((out / CHECKPOINT / "manifest.json").read_text())
    assert (manifest["phase"], manifest["epoch"]) == (phase, 0)
    summary = run(cfg, out)
    assert (summary["resumed"]["from_phase"], summary["resumed"]["from_epoch"]) == (phase, 0)
    assert_same_results(out, reference)


def test_checkpoint_of_another_config_is_refused(tiny_cfg, tmp_path, monkeypatch):
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        interrupt_after_checkpoint(patch, phase=0)
        with pytest.raises(KeyboardInterrupt):
            run(tiny_cfg(*FAST), out)
    with pytest.raises(CheckpointMismatchError, match=r"train\.batch_size: 16 -> 8"):
        run(tiny_cfg(*FAST, "train.batch_size=8"), out)
    assert (out / CHECKPOINT).is_dir()  # refused, not removed


def test_damaged_checkpoint_is_ignored_with_a_warning(tiny_cfg, tmp_path, monkeypatch, caplog):
    cfg = tiny_cfg(*FAST, "checkpoint.keep_after_finish=true")
    reference = run(cfg, tmp_path / "reference")
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        interrupt_after_checkpoint(patch, phase=1)
        with pytest.raises(KeyboardInterrupt):
            run(cfg, out)
    state = out / CHECKPOINT / "state.pkl"
    state.write_bytes(state.read_bytes()[:-10])  # truncated
    with caplog.at_level(logging.WARNING):
        summary = run(cfg, out)
    assert "is damaged" in caplog.text and "state.pkl does not match" in caplog.text
    assert summary["resumed"] is None  # started over
    assert comparable(summary) == comparable(reference)
    assert (out / CHECKPOINT / "manifest.json").exists()  # kept: keep_after_finish


def test_previous_checkpoint_is_used_when_the_swap_was_cut_short(tiny_cfg, tmp_path, monkeypatch):
    cfg = tiny_cfg(*FAST)
    reference = tmp_path / "reference"
    run(cfg, reference)
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        interrupt_after_checkpoint(patch, phase=0)
        with pytest.raises(KeyboardInterrupt):
            run(cfg, out)
    shutil.move(out / CHECKPOINT, out / "checkpoint.previous")  # killed between the renames
    summary = run(cfg, out)
    assert summary["resumed"]["from_phase"] == 0
    assert_same_results(out, reference)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("checkpoint.every", "-1", "an integer >= 0"),
        ("checkpoint.min_interval_s", "-2", "a number >= 0"),
        ("checkpoint.resume", "maybe", "true or false"),
        ("logger.name", "wandb", "one of"),
    ],
)
def test_bad_settings_are_refused_with_the_key(tiny_cfg, tmp_path, key, value, expected):
    from forgetbench.config_check import ConfigError

    with pytest.raises(ConfigError, match=rf"{key}=.*{expected}"):
        run(tiny_cfg(f"{key}={value}"), tmp_path / "run")


def test_which_phase_ends_are_checkpointed(tiny_cfg, tmp_path, monkeypatch):
    writes = []
    monkeypatch.setattr(
        checkpoint_module, "write_checkpoint", lambda *a, **within: writes.append(a)
    )
    four = "data.num_shards=4"
    run(tiny_cfg(*FAST, four), tmp_path / "every")
    assert [a[2] for a in writes] == [0, 1, 2]  # never after the last phase
    writes.clear()
    run(tiny_cfg(*FAST, four, "checkpoint.every=0"), tmp_path / "never")
    assert writes == []
    run(tiny_cfg(*FAST, four, "checkpoint.every=2"), tmp_path / "second")
    assert [a[2] for a in writes] == [1]
    writes.clear()
    run(tiny_cfg(four, "output.run_figure=false"), tmp_path / "default")
    assert writes == []  # the default: at most one per 60 s, and this run takes less


def test_interruption_line_says_where_a_rerun_resumes(tmp_path):
    from forgetbench.cli import interrupted_line
    from forgetbench.results.io import write_json

    write_json(tmp_path / "interrupted.json", {"step": 7, "phase": 2})
    line, status = interrupted_line(tmp_path, KeyboardInterrupt())
    assert line.endswith("of phase 2; partial curves in " + f"{tmp_path}; re-run to redo")
    (tmp_path / CHECKPOINT).mkdir()
    write_json(tmp_path / CHECKPOINT / "manifest.json", {"phase": 1})
    line, status = interrupted_line(tmp_path, KeyboardInterrupt())
    assert line.endswith("re-run to resume after phase 1") and status == 130
