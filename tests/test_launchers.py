"""Sweeps: parallel local runs through Joblib, the SLURM preset, folders named by overrides."""

import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from forgetbench.sweep import count_jobs, sweep_name, with_sweep_dir

BIN = Path(sys.executable).parent


def test_joblib_launcher_runs_two_jobs_in_a_folder_named_by_the_sweep(tmp_path, tiny_overrides):
    cmd = [
        str(BIN / "forgetbench"),
        "-m",
        "hydra/launcher=local",
        "hydra.launcher.n_jobs=2",
        "strategy=sequential,cross_shard",
        *tiny_overrides,
    ]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    (sweep,) = (tmp_path / "results" / "sweeps").iterdir()
    assert sweep.name == sweep_name(
        [
            "hydra/launcher=local",
            "hydra.launcher.n_jobs=2",
            "strategy=sequential,cross_shard",
            *tiny_overrides,
        ]
    )
    assert len(list(sweep.glob("*/summary.json"))) == 2
    assert "2/2 runs finished" in done.stderr


def test_slurm_preset_composes(conf_dir):
    with initialize_config_dir(config_dir=conf_dir, version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.timeout_min == 120 and launcher.signal_delay_s == 120
    raw = OmegaConf.to_container(launcher, resolve=False)
    assert raw["submitit_folder"] == "${hydra.sweep.dir}/.submitit/%j"


def test_slurm_preset_asks_for_the_requeue_signal_and_requeues(tmp_path, conf_dir):
    from submitit.slurm.slurm import _make_sbatch_string

    with initialize_config_dir(config_dir=conf_dir, version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher.max_num_timeout > 0  # a job at its time limit is requeued, not dropped
    script = _make_sbatch_string(
        command="python -m x",
        folder=str(tmp_path),
        signal_delay_s=launcher.signal_delay_s,
        additional_parameters=OmegaConf.to_container(launcher.additional_parameters),
    )
    assert "#SBATCH --signal=USR2@120" in script.splitlines()
    assert "#SBATCH --requeue" in script.splitlines()


def test_sweep_name_and_job_count():
    overrides = ["strategy=a,b", "seed=0,1,2", "train.verbose=0", "paths.data_cache=/x/y"]
    assert sweep_name(overrides) == "seed=0,1,2__strategy=a,b"
    assert sweep_name(["data=dir/x"]) == "data=dir-x"
    assert sweep_name([]) == "default"
    long = sweep_name([f"k{i}=" + "v" * 20 for i in range(10)])
    assert len(long) == 120 and long != sweep_name([f"k{i}=" + "w" * 20 for i in range(10)])
    assert count_jobs(overrides) == 6
    assert with_sweep_dir(["-m", "seed=0,1"]) == [
        "-m",
        "seed=0,1",
        "hydra.sweep.dir='results/sweeps/seed=0,1'",
    ]
    assert with_sweep_dir(["seed=0,1"]) == ["seed=0,1"]  # not a multirun
    assert with_sweep_dir(["-m", "hydra.sweep.dir=x"]) == ["-m", "hydra.sweep.dir=x"]
