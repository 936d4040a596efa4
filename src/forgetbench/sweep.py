"""Sweep bookkeeping: folder names from overrides, progress, and failed jobs listed at the end."""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import sys
import traceback
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, OverrideParseException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from forgetbench.config_check import PATH_KEYS, normal_path
from forgetbench.per_strategy import KEY as PER_STRATEGY
from forgetbench.per_strategy import job_strategy, not_applying
from forgetbench.results.io import SUMMARY, write_with

ERROR = "error.txt"
TRIAL = "trial.json"  # a search trial's record (forgetbench.search)
# Config keys that say where files go or how much is printed, not what is computed: left out of
# sweep folder names, of run ids and of Hydra's override_dirname (``forgetbench.settings_keys``).
SETTINGS_ONLY = (
    "paths",
    "train.verbose",
    "train.steps_per_call",
    "output",
    "data.cache_dir",
    "data.convert_cache",
    "checkpoint",
    "logger",
    "strategy.order",
)
MAX_NAME = 120
MAX_ENUMERATED = 100_000  # larger grids are counted without telling shared folders apart
MAX_JOB_NAME = 200  # file names stop at 255 bytes; longer job names end with a hash instead


def _settings_only(override: str) -> bool:
    """Whether an override sets one of Hydra's own keys or a ``SETTINGS_ONLY`` key."""
    key = override.partition("=")[0]
    return key.startswith(("hydra.", "hydra/")) or any(
        key == k or key.startswith(f"{k}.") for k in SETTINGS_ONLY
    )


def _named(override: str) -> str:
    """An override as it is named in folders: a path key's value absolute, no ``/`` at all."""
    key, _, value = override.partition("=")
    if key.lstrip("+~") in PATH_KEYS and value:
        try:
            parsed = OverridesParser.create().parse_overrides([override])[0].value()
        except OverrideParseException:
            parsed = None
        if isinstance(parsed, str):
            override = f"{key}={normal_path(parsed)}"
    return override.replace("/", "-").replace("'", "").replace('"', "")


def sweep_name(overrides) -> str:
    """A folder name for a sweep, made of its overrides, so the same sweep lands in one folder.

    Hydra's own keys and ``SETTINGS_ONLY`` keys are left out; a path key's value
    (``PATH_KEYS``) is made absolute, ``/`` becomes ``-`` and quotes are dropped; names longer
    than 120 characters are cut and end with a hash of the whole.
    """
    kept = sorted(_named(str(o)) for o in overrides if not _settings_only(str(o)))
    return _shortened("__".join(kept) or "default", MAX_NAME)


def job_dirname(overrides) -> str:
    """A job's folder name: its overrides as Hydra's ``override_dirname`` has them, but flat.

    Sorted ``key=value`` items joined by ``,``, Hydra's and ``SETTINGS_ONLY`` keys left out,
    other strategies' ``per_strategy`` entries left out (:mod:`forgetbench.per_strategy`), path
    values made absolute and ``/`` turned into ``-`` (a path value would otherwise nest
    folders); names longer than 200 characters are cut and end with a hash of the whole.
    Registered as the resolver ``forgetbench.dirname`` for ``conf/config.yaml``.
    """
    strategy = job_strategy(overrides)
    name = ",".join(
        sorted(
            _named(str(o))
            for o in overrides
            if not _settings_only(str(o)) and not not_applying(str(o), strategy)
        )
    )
    return _shortened(name, MAX_JOB_NAME)


def _shortened(name: str, most: int) -> str:
    """``name``, or its first characters and a hash of the whole when longer than ``most``."""
    if len(name) <= most:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[: most - 11]}-{digest}"


def settings_keys(overrides) -> list[str]:
    """The keys of ``overrides`` that are Hydra's own or ``SETTINGS_ONLY`` (sorted).

    Registered as the resolver ``forgetbench.settings_keys``: Hydra's ``override_dirname``
    leaves them out (``exclude_keys`` in ``conf/config.yaml``), as :func:`job_dirname` does.
    """
    return sorted({str(o).partition("=")[0] for o in overrides if _settings_only(str(o))})


OmegaConf.register_new_resolver("forgetbench.dirname", job_dirname, replace=True)
OmegaConf.register_new_resolver("forgetbench.settings_keys", settings_keys, replace=True)


def expand_home(argv: list[str]) -> list[str]:
    """``KEY=~/x`` becomes ``KEY=/home/me/x`` for path keys (Hydra's grammar refuses ``~``)."""
    expanded = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+") in (*PATH_KEYS, "data.convert_cache") and value[:1] == "~":
            arg = f"{key}={os.path.expanduser(value)}"
        expanded.append(arg)
    return expanded


def with_sweep_dir(argv: list[str]) -> list[str]:
    """Adds ``hydra.sweep.dir=results/sweeps/<sweep_name>`` to a multirun's command line.

    Only when the command runs a multirun and sets no sweep folder itself. The folder is named
    once, in the launching process, so every launcher's jobs land in the same folder, and
    running the same sweep again resumes there.
    """
    if not {"-m", "--multirun"} & set(argv) or any(a.startswith("hydra.sweep.dir=") for a in argv):
        return argv
    overrides = [a for a in argv if "=" in a and not a.startswith("-")]
    return [*argv, f"hydra.sweep.dir='results/sweeps/{sweep_name(overrides)}'"]


def count_jobs(overrides) -> int:
    """Number of distinct jobs a grid sweep over ``overrides`` runs.

    Jobs that differ only in other strategies' ``per_strategy`` entries share one folder and
    run once (:mod:`forgetbench.per_strategy`), so they count once.
    """
    parsed = OverridesParser.create().parse_overrides([str(o) for o in overrides])
    total = math.prod(len(list(o.sweep_iterator())) if o.is_sweep_override() else 1 for o in parsed)
    if total > MAX_ENUMERATED or not any(
        o.get_key_element().lstrip("+~").startswith(f"{PER_STRATEGY}.") for o in parsed
    ):
        return total
    options = [
        [f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()]
        if o.is_sweep_override()
        else [f"{o.get_key_element()}={o.get_value_element_as_str()}"]
        for o in parsed
    ]
    return len({job_dirname(list(combo)) for combo in itertools.product(*options)})


def planned_jobs(config: DictConfig) -> int | str:
    """Jobs of a grid sweep, or the trial budget of a search (``hydra.sweeper.n_trials``)."""
    trials = OmegaConf.select(config, "hydra.sweeper.n_trials", default=None)
    if trials is not None:
        return int(trials)
    try:
        return count_jobs(config.hydra.overrides.task)
    except (HydraException, ValueError, TypeError):
        return "?"


def root_cause(exc: BaseException) -> BaseException:
    """The exception that started it all (the end of the cause chain)."""
    root = exc
    while root.__cause__ is not None or (
        root.__context__ is not None and not root.__suppress_context__
    ):
        root = root.__cause__ or root.__context__
    return root


def error_line(exc: BaseException, full: bool = False) -> str:
    """``Type: message`` of the exception that started it all (the end of the cause chain).

    A config error reaches the job wrapped (Hydra's ``InstantiationException``, whose own text
    ends in ``full_key: ...``); the root cause is what names the key and the value.

    Args:
        exc: The exception caught.
        full: The root cause's whole message (else its first line).
    """
    root = root_cause(exc)
    message = str(root).strip().splitlines()
    if full and message:
        return f"{type(root).__name__}: " + "\n".join(message)
    return f"{type(root).__name__}: {message[0]}" if message else type(root).__name__


def record_failure(out_dir: Path, exc: BaseException) -> None:
    """Writes ``out_dir/error.txt``: the root cause on the first line, then the traceback."""
    out_dir.mkdir(parents=True, exist_ok=True)
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    write_with(out_dir / ERROR, lambda tmp: tmp.write_text(f"{error_line(exc)}\n\n{text}"))


def failed_jobs(sweep_dir: Path) -> list[tuple[Path, str]]:
    """``(job folder, first line of its error.txt)`` for every job that recorded a failure."""
    return [
        (path.parent, (path.read_text().strip().splitlines() or ["(empty error.txt)"])[0])
        for path in sorted(Path(sweep_dir).rglob(ERROR))
    ]


class SweepFailures(Callback):
    """Counts finished runs as jobs end; at the end, lists failed jobs and exits 1 if any."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        """Remembers how many jobs the sweep has (a search: its budget of trials)."""
        self.total = planned_jobs(config)

    def on_job_end(self, config: DictConfig, job_return, **kwargs) -> None:
        """Prints how many runs (search trials) of the sweep are finished (multiruns only)."""
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        what = "trials" if config.get("tuning") is not None else "runs"
        done = sum(1 for _ in sweep_dir.rglob(TRIAL if what == "trials" else SUMMARY))
        total = getattr(self, "total", None) or planned_jobs(config)
        print(f"[forgetbench] sweep {sweep_dir}: {done}/{total} {what} finished", file=sys.stderr)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        """Prints the failed jobs and their errors; exits with status 1 if any failed."""
        failures = failed_jobs(Path(config.hydra.sweep.dir))
        if not failures:
            return
        print(f"[forgetbench] {len(failures)} job(s) failed:", file=sys.stderr)
        for folder, error in failures:
            print(f"  {folder}: {error}", file=sys.stderr)
        raise SystemExit(1)
