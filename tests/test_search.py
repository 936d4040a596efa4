import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from forgetbench.config_check import ConfigError
from forgetbench.results.run_files import read_summary
from forgetbench.search import best_trial, check_tuning, run_trial, trials_table

BIN = Path(sys.executable).parent
TUNING = {"objective": "val_acc", "direction": "maximize", "seeds": [7, 8]}


class ValidationOnly(dict):
    """Metrics that fail the test when anything but a validation metric is read."""

    def __getitem__(self, key):
        assert key.startswith("val_"), f"the objective read the test metric {key}"
        return super().__getitem__(key)

    def get(self, key, default=None):
        assert key.startswith("val_"), f"the objective read the test metric {key}"
        return super().get(key, default)


def fake_run(values: dict[int, float | None], statuses=None):
    def run(cfg, folder):
        seed = int(cfg.seed)
        status = (statuses or {}).get(seed, "completed")
        if status == "error":
            raise ValueError("Invalid config value strategy.plugins.ewc.lam=-1")
        metrics = ValidationOnly(acc=1 - (values[seed] or 0), val_acc=values[seed])
        return {"status": status, "metrics": metrics, "diverged": {"reason": "nan loss"}}

    return run


def test_objective_must_be_a_validation_metric():
    for bad, match in [
        ({"objective": "acc"}, "tuning.objective='acc'.*never read the test split"),
        ({"direction": "up"}, "tuning.direction"),
        ({"seeds": []}, "tuning.seeds"),
    ]:
        with pytest.raises(ConfigError, match=match):
            check_tuning({**TUNING, **bad})


def test_trial_mean_of_its_seeds_reads_validation_only(tmp_path):
    cfg = OmegaConf.create({"seed": 0, "tuning": TUNING})
    value = run_trial(cfg, tmp_path, fake_run({7: 0.6, 8: 0.8}), ["x=1"])
    assert value == pytest.approx(0.7)
    trial = json.loads((tmp_path / "trial.json").read_text())
    assert trial["status"] == "completed" and trial["value"] == pytest.approx(0.7)
    assert [r["seed"] for r in trial["runs"]] == [7, 8] and trial["overrides"] == ["x=1"]
    assert [r["folder"] for r in trial["runs"]] == [str(tmp_path / f"seed={s}") for s in (7, 8)]


@pytest.mark.parametrize(("status", "recorded"), [("diverged", "diverged"), ("error", "failed")])
def test_failing_or_diverging_trial_recorded_with_the_worst_value(tmp_path, status, recorded):
    cfg = OmegaConf.create({"seed": 0, "tuning": TUNING})
    value = run_trial(cfg, tmp_path, fake_run({7: 0.9, 8: None}, {8: status}))
    assert value == -math.inf
    trial = json.loads((tmp_path / "trial.json").read_text())
    assert trial["status"] == recorded and trial["value"] is None and trial["reason"]
    minimise = OmegaConf.create({"seed": 0, "tuning": {**TUNING, "direction": "minimize"}})
    assert run_trial(minimise, tmp_path, fake_run({7: 0.9, 8: None}, {8: status})) == math.inf


def test_best_trial_skips_failed_ones(tmp_path):
    cfg = OmegaConf.create({"seed": 0, "tuning": TUNING})
    run_trial(cfg, tmp_path / "a", fake_run({7: 0.5, 8: 0.5}))
    run_trial(cfg, tmp_path / "b", fake_run({7: 0.9, 8: None}, {8: "diverged"}))
    run_trial(cfg, tmp_path / "c", fake_run({7: 0.7, 8: 0.7}))
    table = trials_table(tmp_path)
    assert table["status"].tolist() == ["completed", "completed", "diverged"]
    assert best_trial(tmp_path)["folder"] == str(tmp_path / "c")
    with pytest.raises(ValueError, match="none completed"):
        best_trial(tmp_path / "b")


def write_rule(folder: Path, sizes, flip: bool, seed: int) -> Path:
    """Shards labelled by the sign of feature 0 (the opposite sign when ``flip``)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for k, n in enumerate(sizes):
        x = rng.normal(size=(n, 4)).astype(np.float32)
        y = ((x[:, 0] > 0) != flip).astype(np.int64)
        np.savez(folder / f"s{k}.npz", array1=x, array2=y)
    return folder


def search(tmp_path, sweep, *extra):
    data = tmp_path / "shards"
    cmd = [
        str(BIN / "forgetbench"),
        "-m",
        "search=sequential",
        "data=npz_dir",
        f"data.path={data / 'train'}",
        f"data.validation_dir={data / 'val'}",
        f"data.heldout_dir={data / 'test'}",
        "model.hidden=[8]",
        "train.epochs=2",
        "train.batch_size=16",
        "train.verbose=0",
        "eval.every_samples=200",
        "tuning.seeds=[5]",
        f"paths.data_cache={tmp_path / 'cache'}",
        f"hydra.sweep.dir={sweep}",
        *extra,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_search_picks_the_best_validation_trial_never_the_test_split(tmp_path):
    data = tmp_path / "shards"
    write_rule(data / "train", (160, 160), flip=False, seed=0)
    write_rule(data / "val", (60, 60), flip=False, seed=1)
    write_rule(data / "test", (60, 60), flip=True, seed=2)  # scores the opposite way
    sweep = tmp_path / "sweep"
    search(
        tmp_path,
        sweep,
        "hydra.sweeper.n_trials=2",  # the seeded sampler proposes each value once
        "optimizer.learning_rate=choice(0.0001,0.5)",
    )
    table = trials_table(sweep)
    assert len(table) == 2 and (table["status"] == "completed").all()
    best = best_trial(sweep)
    assert "optimizer.learning_rate=0.5" in best["overrides"]
    chosen = OmegaConf.load(sweep / "optimization_results.yaml")
    assert chosen.best_params["optimizer.learning_rate"] == 0.5
    assert chosen.best_value == pytest.approx(best["value"])
    runs = {
        row.value: read_summary(Path(row.folder) / "seed=5")["metrics"]
        for row in table.itertuples()
    }
    best_run, other = runs[max(runs)], runs[min(runs)]
    assert best_run["val_acc"] > other["val_acc"] and best_run["acc"] < other["acc"]


@pytest.mark.slow
def test_resumed_search_neither_repeats_nor_loses_trials(tmp_path):
    data = tmp_path / "shards"
    write_rule(data / "train", (120, 120), flip=False, seed=0)
    write_rule(data / "val", (40, 40), flip=False, seed=1)
    write_rule(data / "test", (40, 40), flip=False, seed=2)
    sweep = tmp_path / "sweep"
    search(tmp_path, sweep, "hydra.sweeper.n_trials=2")
    first = trials_table(sweep).set_index("folder")
    stamps = {f: (Path(f) / "seed=5" / "summary.json").stat().st_mtime_ns for f in first.index}
    search(tmp_path, sweep, "hydra.sweeper.n_trials=3")  # the same study, resumed and extended
    again = trials_table(sweep).set_index("folder")
    assert len(again) == 3 and set(first.index) < set(again.index)
    for folder, stamp in stamps.items():  # finished trials reused, not trained again
        assert (Path(folder) / "seed=5" / "summary.json").stat().st_mtime_ns == stamp
        assert again.loc[folder, "value"] == first.loc[folder, "value"]


def test_ties_go_to_the_earliest_trial(tmp_path):
    cfg = OmegaConf.create({"seed": 0, "tuning": TUNING})
    run_trial(cfg, tmp_path / "z", fake_run({7: 0.5, 8: 0.5}), number=0)
    run_trial(cfg, tmp_path / "a", fake_run({7: 0.5, 8: 0.5}), number=1)
    assert best_trial(tmp_path)["folder"] == str(tmp_path / "z")
