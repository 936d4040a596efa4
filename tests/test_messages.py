"""What a person reads: one line for an interruption, a config error or a divergence; no noise."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from forgetbench.cli import result_line
from forgetbench.quiet import without_native_noise

BIN = Path(sys.executable).parent
TESTS = Path(__file__).resolve().parent


@pytest.fixture
def forgetbench(tmp_path, tiny_overrides):
    """Returns ``forgetbench(*overrides, tiny=...)``: runs the command as a person would (no
    TF_CPP_MIN_LOG_LEVEL set), on the tiny config unless ``tiny`` says otherwise."""

    def command(*overrides, tiny=tiny_overrides):
        env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
        env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
        data_cache = f"paths.data_cache={tmp_path / 'data'}"
        cmd = [str(BIN / "forgetbench"), *tiny, data_cache, *overrides]
        return subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            # a person's terminal delivers SIGINT; a background job (nohup, CI) may ignore it
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )

    return command


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_run_ends_with_one_line_and_128_plus_the_signal(
    tmp_path, signum, forgetbench
):
    out = tmp_path / "r"
    done = forgetbench(
        "+strategy.plugins.stop._target_=conftest.SignalAfterPhase",
        f"+strategy.plugins.stop.signum={int(signum)}",
        f"hydra.run.dir={out}",
    )
    assert done.returncode == 128 + signum, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr and len(lines) == 1, done.stderr
    name = signal.Signals(signum).name
    assert lines[0].startswith(f"[forgetbench] {name}: interrupted at step ")
    assert f"of phase 0; partial curves in {out}; re-run to redo" in lines[0]
    assert (out / "curves.parquet").exists() and not (out / "summary.json").exists()


def test_sigterm_before_training_is_one_line_too(tmp_path, forgetbench):
    out = tmp_path / "r"
    done = forgetbench(
        "+strategy.plugins.stop._target_=conftest.SignalAtSetup", f"hydra.run.dir={out}"
    )
    assert done.returncode == 143 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        f"[forgetbench] SIGTERM: interrupted before training; nothing written in {out}; "
        "re-run to redo"
    )


def test_a_missing_data_path_is_one_line(tmp_path, forgetbench):
    done = forgetbench("data=npz_dir", f"hydra.run.dir={tmp_path / 'r'}", tiny=[])
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "[forgetbench] error: ConfigError: Missing config value data.path: expected a value. "
        "Received ??? (none given). Set it on the command line (data.path: the folder of "
        "training shards, e.g. data.path=/my/shards)"
    )


def test_a_diverged_run_says_why_and_where():
    summary = {
        "run_id": "synthetic-sequential-weighted-seed0-abc",
        "status": "diverged",
        "diverged": {"reason": "non-finite loss", "step": 12, "phase": 1, "samples_seen": 380},
    }
    assert result_line(summary, Path("/r")) == (
        "[forgetbench] synthetic-sequential-weighted-seed0-abc diverged: non-finite loss at "
        "step 12 (phase 1, 380 samples seen) -> /r"
    )


@pytest.mark.parametrize(("level", "shown"), [("3", False), ("0", True)])
def test_native_noise_left_out_unless_asked(capfd, monkeypatch, level, shown):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", level)
    noise = "E0000 00:00:1.2 31248 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n"
    with without_native_noise():
        os.write(2, noise.encode())
        os.write(2, b"a real problem\n")
    err = capfd.readouterr().err
    assert "a real problem" in err and ("cuInit" in err) == shown
