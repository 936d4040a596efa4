"""The configuration reference in docs/ matches the config tree in conf/, both ways.

A documented key is a Markdown table row of any ``docs/**/*.md`` page whose first cell is the
full dotted key in backticks, as it appears in the composed config. Keys of ``conf/config.yaml``
count as they are, keys of ``conf/GROUP/OPTION.yaml`` under ``GROUP.`` (or their ``# @package``),
launcher keys under ``hydra.launcher.``. Experiment presets and ``conf/tuned/`` only set values
of keys that exist elsewhere: each of their keys must be a documented key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
DOCS = ROOT / "docs"
PRESET_GROUPS = ("experiment", "tuned")
LEAF_MAPPINGS = ("hydra.sweeper.params",)  # its entries are search dimensions named by keys
HYDRA_LOGGING = ("hydra.hydra_logging", "hydra.job_logging")  # Hydra's own logging setup
KEY_ROW = re.compile(r"^\s*\|\s*`([A-Za-z_]\w*(?:\.\w+)*)`\s*\|")
FILE_NAME = re.compile(r"\.(py|ya?ml|md|json|parquet|npz|npy|csv|tex)$")  # module rows are not keys
PACKAGE = re.compile(r"^#\s*@package\s+(\S+)", re.MULTILINE)
ROW_FORMAT = (
    "Add one Markdown table row per key to a page under docs/ (the configuration reference is "
    "docs/guide/configuration.md), first cell the full dotted key in backticks:\n"
    "  | `train.batch_size` | `32` | samples per batch |"
)


def package_of(path: Path, conf: Path) -> str:
    """The dotted prefix a config file's keys get in the composed config ('' for global)."""
    group = path.parent.relative_to(conf).as_posix().replace("/", ".")
    header = PACKAGE.search(path.read_text())
    if header is None and group.split(".")[0] == "tuned":
        return ""  # placed by the defaults list: optional tuned@_global_
    if header is None:
        return "" if group == "." else group
    package = header.group(1)
    if package == "_global_":
        return ""
    return package.replace("_group_", group)


def leaf_keys(node: object, prefix: str, *, root: bool = True) -> Iterator[str]:
    """Dotted keys of a YAML mapping's leaves.

    ``defaults`` at the root and Hydra's ``_target_``-style keys are not keys a person sets;
    a mapping holding only such keys (an instantiated object) is a leaf itself.
    """
    if isinstance(node, dict) and prefix not in LEAF_MAPPINGS:
        children = {
            str(key): value
            for key, value in node.items()
            if not str(key).startswith("_") and not (root and key == "defaults")
        }
        if children or root:
            for key, value in children.items():
                yield from leaf_keys(value, f"{prefix}.{key}" if prefix else key, root=False)
            return
    yield prefix


def keys_of_files(conf: Path, *, presets: bool) -> dict[str, Path]:
    """Each key of the config tree (or of its presets) with the first file that holds it."""
    found: dict[str, Path] = {}
    for path in sorted(conf.rglob("*.yaml")):
        relative = path.relative_to(conf)
        if (relative.parts[0] in PRESET_GROUPS) != presets:
            continue
        content = yaml.safe_load(path.read_text()) or {}
        for key in leaf_keys(content, package_of(path, conf)):
            if not key.startswith(HYDRA_LOGGING):
                found.setdefault(key, path)
    return found


def documented_keys(docs: Path, roots: set[str]) -> dict[str, str]:
    """Keys documented in table rows of every page under ``docs``, with ``page:line``.

    Only first cells whose first part is a root of the config (``train``, ``data``, ``seed``,
    ...) and that are not file names count, so tables of other things (modules, strategies,
    policies) are not keys.
    """
    found: dict[str, str] = {}
    for page in sorted(docs.rglob("*.md")):
        for number, line in enumerate(page.read_text().splitlines(), start=1):
            match = KEY_ROW.match(line)
            key = match.group(1) if match else ""
            if key.split(".")[0] in roots and not FILE_NAME.search(key):
                found.setdefault(key, f"{page.relative_to(docs.parent)}:{number}")
    return found


def _listing(keys: dict[str, object]) -> str:
    return "\n".join(f"  {key}  ({where})" for key, where in sorted(keys.items()))


@pytest.fixture(scope="module")
def reference():
    conf_keys = keys_of_files(CONF, presets=False)
    roots = {key.split(".")[0] for key in conf_keys}
    return conf_keys, keys_of_files(CONF, presets=True), documented_keys(DOCS, roots)


def test_every_config_key_is_documented(reference):
    conf_keys, _, documented = reference
    missing = {
        key: path.relative_to(ROOT) for key, path in conf_keys.items() if key not in documented
    }
    assert not missing, (
        f"{len(missing)} key(s) of conf/ are not documented in docs/ (key, file):\n"
        f"{_listing(missing)}\n{ROW_FORMAT}"
    )


def test_every_documented_key_exists_in_the_config(reference):
    conf_keys, _, documented = reference
    unknown = {key: where for key, where in documented.items() if key not in conf_keys}
    assert not unknown, (
        f"{len(unknown)} documented key(s) are in no file of conf/ (key, page:line):\n"
        f"{_listing(unknown)}\nExpected every documented key to be a key of conf/config.yaml, "
        "GROUP.KEY of conf/GROUP/*.yaml or hydra.launcher.KEY: fix the key or remove the row."
    )


def test_every_preset_key_is_documented(reference):
    _, preset_keys, documented = reference
    missing = {
        key: path.relative_to(ROOT) for key, path in preset_keys.items() if key not in documented
    }
    assert not missing, (
        f"{len(missing)} key(s) set by conf/experiment/ or conf/tuned/ are not documented "
        f"(key, preset):\n{_listing(missing)}\nA preset may only set keys that exist elsewhere "
        f"in conf/ and are documented.\n{ROW_FORMAT}"
    )


def test_the_checks_find_what_is_missing_and_what_is_unknown(tmp_path):
    """On a hand-made tree: the enumeration and the row parser, each case once."""
    conf, docs = tmp_path / "conf", tmp_path / "docs"
    (conf / "data").mkdir(parents=True)
    (conf / "hydra" / "launcher").mkdir(parents=True)
    (conf / "experiment").mkdir()
    (conf / "tuned" / "e").mkdir(parents=True)
    (docs / "guide").mkdir(parents=True)
    (conf / "config.yaml").write_text(
        "defaults:\n  - data: a\nseed: 0\ntrain:\n  batch_size: 32\n"
        "hydra:\n  callbacks:\n    fail:\n      _target_: x.Y\n"
    )
    (conf / "data" / "a.yaml").write_text(
        "_target_: x.a\nn_shards: 5\nplugins:\n  ewc:\n    lam: 1\n"
    )
    (conf / "hydra" / "launcher" / "local.yaml").write_text(
        "# @package hydra.launcher\ndefaults:\n  - joblib\nn_jobs: 2\n"
    )
    (conf / "experiment" / "e.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /data: a\ntrain:\n  epochs: 3\n"
    )
    (conf / "tuned" / "e" / "ewc.yaml").write_text("data:\n  plugins:\n    ewc:\n      lam: 10\n")
    (docs / "guide" / "conf.md").write_text(
        "| key | default | meaning |\n|---|---|---|\n| `seed` | `0` | seed |\n"
        "| `data.n_shards` | `5` | shards |\n|`hydra.launcher.n_jobs`|`2`| jobs |\n"
        "| `data.typo_key` | | gone |\n| `drop` | dropped | a policy, not a key |\n"
        "| `batch.py` | columns | a module, not a key |\n| `data.py` | a module | not a key |\n"
    )
    (docs / "other.md").write_text("| `train.epochs` | `2` | passes |\n")

    conf_keys = keys_of_files(conf, presets=False)
    assert set(conf_keys) == {
        "seed",
        "train.batch_size",
        "hydra.callbacks.fail",
        "data.n_shards",
        "data.plugins.ewc.lam",
        "hydra.launcher.n_jobs",
    }
    assert set(keys_of_files(conf, presets=True)) == {"train.epochs", "data.plugins.ewc.lam"}
    roots = {key.split(".")[0] for key in conf_keys}
    documented = documented_keys(docs, roots)
    assert set(documented) == {
        "seed",
        "data.n_shards",
        "hydra.launcher.n_jobs",
        "data.typo_key",
        "train.epochs",
    }
    assert documented["data.typo_key"] == "docs/guide/conf.md:6"
    assert set(conf_keys) - set(documented) == {
        "train.batch_size",
        "hydra.callbacks.fail",
        "data.plugins.ewc.lam",
    }
    assert set(documented) - set(conf_keys) == {"data.typo_key", "train.epochs"}
