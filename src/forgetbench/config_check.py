"""The composed config before a run: missing values, unknown keys, path spellings.

- A missing mandatory value (``???``, such as ``data.path`` of ``data=npz_dir``) is one error
  line naming the key, not a traceback from deep inside the run.
- A key that forgetbench does not read (``+train.batchsize=32``: Hydra suggests ``+`` for a
  typo) is refused, naming the closest known key, instead of running again under a new run id.
  Known keys are those of ``conf/config.yaml`` in the sections read directly (``train``,
  ``eval``, ``output``, ``paths``) and at the top level; the config groups' own keys are checked
  by the functions they configure.
- Folder paths that say what data is read (``PATH_KEYS``) are made absolute (``~`` expanded,
  trailing ``/`` and ``..`` removed, symbolic links kept), so ``/x/``, ``/x`` and a relative path
  to the same folder give one run id and one report setting.
"""

from __future__ import annotations

import difflib
import os
from functools import cache
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

CONF = Path(__file__).resolve().parents[2] / "conf"
PATH_KEYS = ("data.path", "data.heldout_dir")
CHECKED_SECTIONS = ("train", "eval", "output", "paths")
HINTS = {"data.path": "the folder of training shards, e.g. data.path=/my/shards"}


class ConfigError(ValueError):
    """A config a run cannot use: a missing value, an unknown key or an impossible value."""


def normal_path(value: str | os.PathLike) -> str:
    """``value`` as an absolute path: ``~`` expanded, ``.``, ``..`` and trailing ``/`` gone."""
    return os.path.abspath(os.path.expanduser(os.fspath(value)))


@cache
def known_keys(conf_dir: Path = CONF) -> dict[str, set[str]]:
    """Known keys by section (``""``: the top level), from ``conf_dir/config.yaml``."""
    base = OmegaConf.load(conf_dir / "config.yaml")
    groups = {
        str(k) for entry in base.get("defaults", []) if OmegaConf.is_dict(entry) for k in entry
    }
    top = {str(k) for k in base if k not in ("defaults", "hydra")} | groups
    known = {"": top}
    for section in CHECKED_SECTIONS:
        node = base.get(section)
        known[section] = {str(k) for k in node} if node is not None else set()
    return known


def check_missing(cfg: DictConfig) -> None:
    """Raises :class:`ConfigError` naming every key whose value is missing (``???``)."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        hints = "; ".join(f"{k}: {HINTS[k]}" for k in missing if k in HINTS)
        raise ConfigError(
            f"Missing config value{'s' if len(missing) > 1 else ''} {', '.join(missing)}: "
            f"expected a value. Received ??? (none given). Set it on the command line"
            + (f" ({hints})" if hints else ", e.g. KEY=VALUE")
        )


def check_unknown(cfg: DictConfig, conf_dir: Path = CONF) -> None:
    """Refuses keys forgetbench does not read, naming the closest known key.

    Raises:
        ConfigError: ``Unknown config key KEY ... Closest known key: ...``.
    """
    if not (conf_dir / "config.yaml").exists():
        return
    known = known_keys(conf_dir)
    found = {"": [str(k) for k in cfg]}
    for section in CHECKED_SECTIONS:
        node = cfg.get(section)
        found[section] = [str(k) for k in node] if OmegaConf.is_dict(node) else []
    for section, keys in found.items():
        for key in keys:
            if key in known[section]:
                continue
            dotted = f"{section}.{key}" if section else key
            options = sorted(f"{section}.{k}" if section else k for k in known[section])
            close = difflib.get_close_matches(dotted, options, n=1, cutoff=0.6)
            hint = f"Closest known key: {close[0]}." if close else f"Known keys: {options}."
            raise ConfigError(
                f"Unknown config key {dotted} (added by an override such as +{dotted}=...): "
                f"expected a key that forgetbench reads. Received {dotted}, which nothing "
                f"reads, so it would only change the run id. {hint} Set the known key "
                "without '+'."
            )


def normalise_paths(cfg: DictConfig) -> None:
    """Rewrites ``PATH_KEYS`` in ``cfg`` as absolute paths (:func:`normal_path`), in place."""
    for key in PATH_KEYS:
        value = OmegaConf.select(cfg, key, default=None)
        if isinstance(value, str) and value:
            with open_dict(cfg):
                OmegaConf.update(cfg, key, normal_path(value), merge=False)


def prepare(cfg: DictConfig) -> None:
    """Checks ``cfg`` for missing values and unknown keys, then normalises its paths."""
    check_missing(cfg)
    check_unknown(cfg)
    normalise_paths(cfg)
