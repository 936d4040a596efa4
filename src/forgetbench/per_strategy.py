r"""Per-strategy settings: one sweep over strategies, each with its own hyperparameters.

``+per_strategy.STRATEGY.KEY=VALUE`` sets ``KEY`` only in the jobs whose strategy config is
``STRATEGY`` (the ``strategy=`` choice), e.g.::

    forgetbench -m strategy=sequential,replay,ewc \
        +per_strategy.replay.strategy.plugins.replay.capacity=200 \
        +per_strategy.ewc.strategy.plugins.ewc.lam=10,100

Every job receives every ``per_strategy`` entry; :func:`apply_per_strategy` merges its own
strategy's entry into the config and drops the others, so a job's resolved config (and with it
its run id and the report's settings) holds only what applies to it: the sequential job above is
the plain sequential run. Job folders leave out the entries of other strategies
(:func:`not_applying`), so a job repeated only by another strategy's values shares one folder and
is run once.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigKeyError

from forgetbench.config_check import CONF, ConfigError

KEY = "per_strategy"
# Config keys left out of run ids while at these values: the defaults that change nothing.
INERT_DEFAULTS = {
    "per_strategy": {},
    "data.validation_fraction": 0.0,
    "data.validation_dir": None,
    "shard_range": None,
    "tuning": None,
}


def strategy_choices() -> list[str]:
    """The strategy configs of ``conf/strategy/`` (the values ``strategy=`` accepts)."""
    return sorted(p.stem for p in (CONF / "strategy").glob("*.yaml"))


def _leaves(node, prefix: str = "") -> dict:
    if isinstance(node, dict) and node:
        out = {}
        for key, value in node.items():
            out.update(_leaves(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def apply_per_strategy(cfg: DictConfig, choice: str) -> None:
    """Merges ``per_strategy.<choice>`` into ``cfg`` and drops the other strategies' entries.

    Args:
        cfg: The composed config, changed in place.
        choice: The job's strategy config name (Hydra's ``strategy`` choice).

    Raises:
        ConfigError: naming the entry, for a strategy no config of ``conf/strategy/`` has, or a
            key the job's config does not have (a typo would otherwise change nothing).
    """
    settings = OmegaConf.select(cfg, KEY, default=None)
    if not settings:
        return
    entries = OmegaConf.to_container(settings, resolve=False)
    known = strategy_choices()
    for name in entries:
        if name not in known:
            raise ConfigError(
                f"Unknown strategy in {KEY}.{name}: expected one of {known} (the strategy= "
                f"choices). Received {name}. Fix the name in +{KEY}.{name}.KEY=VALUE"
            )
    own = entries.get(choice) or {}
    for key, value in (_leaves(own) if own else {}).items():
        if OmegaConf.select(cfg, key, default=ConfigKeyError) is ConfigKeyError:
            raise ConfigError(
                f"Unknown key in {KEY}.{choice}.{key}: expected a key of the {choice} job's "
                f"config (e.g. strategy.plugins...). Received {key}, which that config does not "
                "have. Check the spelling against conf/strategy/"
            )
        OmegaConf.update(cfg, key, value, merge=True)
    with open_dict(cfg):
        cfg[KEY] = {choice: own} if own else {}


def override_key(override: str) -> str:
    """The dotted key an override sets, without Hydra's ``+``/``~``/``++`` prefixes."""
    return override.partition("=")[0].lstrip("+~")


def not_applying(override: str, strategy: str | None) -> bool:
    """Whether ``override`` sets another strategy's ``per_strategy`` entry than ``strategy``."""
    parts = override_key(override).split(".")
    return strategy is not None and parts[0] == KEY and len(parts) > 1 and parts[1] != strategy


def job_strategy(overrides) -> str | None:
    """The ``strategy=`` choice among a job's overrides, or ``None`` when it has none."""
    for override in overrides:
        key, _, value = str(override).partition("=")
        if key.lstrip("+") == "strategy":
            return value
    return None


def drop_inert(config: dict) -> dict:
    """``config`` (a resolved config, changed in place) without keys at their inert default."""
    for dotted, default in INERT_DEFAULTS.items():
        *parents, leaf = dotted.split(".")
        node = config
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node and node[leaf] == default:
            del node[leaf]
    return config
