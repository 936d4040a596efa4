import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from forgetbench.config_check import ConfigError
from forgetbench.per_strategy import apply_per_strategy
from forgetbench.run_folder import config_digest
from forgetbench.sweep import count_jobs, job_dirname

BIN = Path(sys.executable).parent
REPLAY_CAPACITY = "+per_strategy.replay.strategy.plugins.replay.capacity=20"
EWC_LAM = "+per_strategy.ewc.strategy.plugins.ewc.lam=7"


def digest(cfg):
    return config_digest(OmegaConf.to_container(cfg, resolve=True))


def test_entry_applies_to_its_strategy_only(tiny_cfg):
    for strategy in ("sequential", "replay", "ewc"):
        cfg = tiny_cfg(f"strategy={strategy}", REPLAY_CAPACITY, EWC_LAM)
        apply_per_strategy(cfg, strategy)
        plain = tiny_cfg(f"strategy={strategy}")
        if strategy == "sequential":  # nothing applies: the plain run, the same run id
            assert digest(cfg) == digest(plain)
            assert "plugins" not in cfg.strategy
        else:
            plugin = cfg.strategy.plugins[strategy]
            assert (plugin.get("capacity"), plugin.get("lam")) in ((20, None), (None, 7))
            assert digest(cfg) != digest(plain)
            assert list(cfg.per_strategy) == [strategy]


def test_unknown_strategy_or_key_named():
    cfg = OmegaConf.create({"strategy": {"plugins": {"ewc": {"lam": 1}}}})
    cfg.per_strategy = {"ewcc": {"strategy": {"plugins": {"ewc": {"lam": 2}}}}}
    with pytest.raises(ConfigError, match=r"per_strategy.ewcc.*expected one of \[.*'ewc'"):
        apply_per_strategy(cfg, "ewc")
    cfg.per_strategy = {"ewc": {"strategy": {"plugins": {"ewc": {"lamda": 2}}}}}
    with pytest.raises(ConfigError, match=r"per_strategy.ewc.strategy.plugins.ewc.lamda"):
        apply_per_strategy(cfg, "ewc")


def test_job_folders_leave_out_other_strategies_entries():
    overrides = ["strategy=sequential", REPLAY_CAPACITY, "seed=1"]
    assert job_dirname(overrides) == "seed=1,strategy=sequential"
    named = job_dirname(["strategy=replay", REPLAY_CAPACITY, EWC_LAM])
    assert named == f"{REPLAY_CAPACITY},strategy=replay"


@pytest.mark.slow
def test_one_sweep_each_strategy_with_its_own_settings(tmp_path, tiny_overrides):
    sweep = tmp_path / "sweep"
    cmd = [
        str(BIN / "forgetbench"),
        "-m",
        "strategy=sequential,replay",
        "+per_strategy.replay.strategy.plugins.replay.capacity=20,40",
        *tiny_overrides,
        "data.num_shards=2",
        f"paths.data_cache={tmp_path / 'data'}",
        f"hydra.sweep.dir={sweep}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summaries = {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/summary.json")}
    common = [o for o in tiny_overrides if not o.startswith("data.num_shards=")]
    common.append("data.num_shards=2")  # the last value of a key given twice
    capacity = "+per_strategy.replay.strategy.plugins.replay.capacity"
    expected = [
        [*common, "strategy=replay", f"{capacity}=20"],
        [*common, "strategy=replay", f"{capacity}=40"],
        [*common, "strategy=sequential", f"{capacity}=20"],  # run once, for both capacities
    ]
    assert sorted(summaries) == sorted(job_dirname(o) for o in expected)
    capacities = sorted(
        s["config"]["strategy"]["plugins"]["replay"]["capacity"]
        for s in summaries.values()
        if s["strategy"] == "replay"
    )
    assert capacities == [20, 40]
    sequential = summaries[job_dirname(expected[2])]
    assert "per_strategy" not in sequential["config"] or not sequential["config"]["per_strategy"]


def test_jobs_sharing_a_folder_count_once():
    assert count_jobs(["strategy=sequential,replay", f"{REPLAY_CAPACITY[:-3]}=20,40"]) == 3
    assert count_jobs(["strategy=sequential,replay", "seed=0,1"]) == 4
