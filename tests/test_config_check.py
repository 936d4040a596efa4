"""Config checks before a run: path spellings, unknown keys, missing values, folder names."""

import os

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from forgetbench.config_check import ConfigError, prepare
from forgetbench.run import run
from forgetbench.run_folder import config_digest
from forgetbench.sweep import expand_home, job_dirname, settings_keys, sweep_name


@pytest.fixture
def digest_for(compose_config):
    """Returns ``digest_for(*overrides)``: the prepared config's digest, and the config."""

    def digest(*overrides):
        cfg = compose_config(list(overrides))
        prepare(cfg)
        return config_digest(OmegaConf.to_container(cfg, resolve=True)), cfg

    return digest


def test_one_run_id_for_three_spellings_of_a_path(tmp_path, monkeypatch, write_shards, digest_for):
    folder = write_shards(tmp_path / "shards")
    monkeypatch.chdir(tmp_path)
    spellings = [f"{folder}/", str(folder), "shards", "./shards/../shards", "'shards/'"]
    digests = {digest_for("data=npz_dir", f"data.path={p}")[0] for p in spellings}
    assert len(digests) == 1
    _, cfg = digest_for("data=npz_dir", "data.path=shards/", "data.heldout_dir=held/")
    assert cfg.data.path == str(folder) and cfg.data.heldout_dir == str(tmp_path / "held")


def test_a_finished_run_is_found_under_another_spelling(
    tmp_path, monkeypatch, keras_session, compose_config, quick_overrides, write_shards
):
    folder = write_shards(tmp_path / "shards", sizes=(50, 61))
    monkeypatch.chdir(tmp_path)
    base = [*quick_overrides, f"paths.data_cache={tmp_path / 'data'}", "data=npz_dir"]
    first = run(compose_config([*base, f"data.path={folder}/"]), tmp_path / "r")
    again = run(compose_config([*base, "data.path=shards"]), tmp_path / "r")  # no OtherConfigError
    assert again == first and first["config"]["data"]["path"] == str(folder)


def test_home_expanded(monkeypatch, tmp_path, digest_for):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert expand_home(["data.path=~/x", "seed=1", "+data.heldout_dir=~"]) == [
        f"data.path={tmp_path}/x",
        "seed=1",
        f"+data.heldout_dir={tmp_path}",
    ]
    _, cfg = digest_for("data=npz_dir", "data.path='~/x'")
    assert cfg.data.path == f"{tmp_path}/x"


def test_folder_names_have_no_path_separators(monkeypatch, tmp_path, conf_dir):
    monkeypatch.chdir(tmp_path)
    job = ["data.path=/data/a/b/", "seed=1", "strategy=replay", "train.verbose=0"]
    assert job_dirname(job) == "data.path=-data-a-b,seed=1,strategy=replay"
    assert job_dirname(["data.path=a/b"]) == job_dirname([f"data.path={tmp_path}/a/b/"])
    assert sweep_name(["data.path=/data/a/b/", "seed=0,1"]) == "data.path=-data-a-b__seed=0,1"
    assert job_dirname(["strategy=sequential", "seed=0"]) == "seed=0,strategy=sequential"
    with initialize_config_dir(config_dir=conf_dir, version_base="1.3"):
        cfg = compose("config", overrides=["data=npz_dir", *job], return_hydra_config=True)
    assert cfg.hydra.sweep.subdir == "data.path=-data-a-b,data=npz_dir,seed=1,strategy=replay"
    assert os.sep not in cfg.hydra.sweep.subdir


@pytest.mark.parametrize(
    ("override", "closest"),
    [
        ("+train.batchsize=32", "Closest known key: train.batch_size."),
        ("+eval.every_sample=10", "Closest known key: eval.every_samples."),
        ("+seeds=3", "Closest known key: seed."),
        ("+output.figure=false", "Closest known key: output.run_figure."),
    ],
)
def test_an_added_unknown_key_is_refused(override, closest, compose_config):
    with pytest.raises(ConfigError, match="Unknown config key") as caught:
        prepare(compose_config([override]))
    key = override[1:].partition("=")[0]
    assert f"Unknown config key {key} " in str(caught.value) and closest in str(caught.value)


def test_missing_value_named_in_one_line(compose_config):
    with pytest.raises(ConfigError) as caught:
        prepare(compose_config(["data=npz_dir"]))
    text = str(caught.value)
    assert "\n" not in text and "Missing config value data.path" in text
    assert "e.g. data.path=/my/shards" in text


def test_hydras_override_dirname_leaves_out_the_settings_only_keys(conf_dir):
    overrides = ["seed=1", "train.verbose=0", "paths.data_cache=/c", "output.run_figure=false"]
    assert settings_keys([*overrides, "hydra.run.dir=/r"]) == [
        "hydra.run.dir",
        "output.run_figure",
        "paths.data_cache",
        "train.verbose",
    ]
    with initialize_config_dir(config_dir=conf_dir, version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    excluded = cfg.hydra.job.config.override_dirname.exclude_keys
    assert list(excluded) == ["output.run_figure", "paths.data_cache", "train.verbose"]
