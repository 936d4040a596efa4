"""Config value rules: the words of each rule, and plugins' own rules checked before any work."""

import re

import pytest
from hydra.utils import get_class
from omegaconf import OmegaConf

from forgetbench.config_check import ConfigError
from forgetbench.options import (
    a_bool,
    int_at_least,
    integer_at_least,
    invalid_message,
    number_where,
    one_of,
    or_null,
)
from forgetbench.run import plugin_rules, validate_config
from forgetbench.strategies.base import Plugin


class Bounded(Plugin):
    """A test plugin with one declared option."""

    options = {"k": integer_at_least(2)}

    def __init__(self, k: int = 2) -> None:
        self.k = k


@pytest.mark.parametrize(
    ("rule", "allowed", "refused", "words"),
    [
        (integer_at_least(1), [1, 7, 3.0], [0, 2.5, True, "3", None], "an integer >= 1"),
        (or_null(integer_at_least(0)), [None, 0, 4], [-1, 0.5], "an integer >= 0, or null"),
        (number_where(lambda v: 0 < v < 1, "in (0, 1)"), [0.5, 0.01], [0, 1, False], "in (0, 1)"),
        (one_of(("a", "b")), ["a", "b"], ["c", None], "one of ['a', 'b']"),
        (int_at_least(1), [1, 7], [0, 3.0, True, "3"], "an integer >= 1"),
        (a_bool(), [True, False], [0, 1, "true", None], "true or false"),
    ],
)
def test_rules_allow_what_their_words_say(rule, allowed, refused, words):
    assert all(rule(v) for v in allowed) and not any(rule(v) for v in refused)
    assert rule.allowed == words
    assert invalid_message("a.b", "x", rule) == f"Invalid config value a.b='x'. Expected {words}."
    assert invalid_message("a.b", None, rule, missing=True).startswith(
        "Invalid config value a.b=(missing)."
    )


def test_a_plugins_declared_options_are_checked_before_any_work(tiny_cfg, tmp_path):
    plugin = ["+strategy.plugins.bounded._target_=test_options.Bounded"]
    cfg = tiny_cfg(*plugin, "+strategy.plugins.bounded.k=1")
    assert set(plugin_rules(cfg)) == {"strategy.plugins.bounded.k"}
    with pytest.raises(ConfigError) as caught:
        validate_config(cfg)
    assert str(caught.value) == (
        "Invalid config value strategy.plugins.bounded.k=1. Expected an integer >= 2."
    )
    validate_config(tiny_cfg(*plugin, "+strategy.plugins.bounded.k=3"))  # allowed: no error
    replay = tiny_cfg("strategy=replay_ewc")
    assert set(plugin_rules(replay)) == {
        "strategy.plugins.replay.capacity",
        "strategy.plugins.ewc.lam",
    }


@pytest.mark.parametrize(
    ("strategy", "override", "message"),
    [
        ("si", "strategy.plugins.si.xi=0", "SI xi: expected a number > 0. Received 0"),
        ("lwf", "strategy.plugins.lwf.distill_over=all", "LwF distill_over: expected one of"),
        ("lwf", "strategy.plugins.lwf.alpha=[]", "LwF alpha: expected a number >= 0 or a non"),
        ("agem", "strategy.plugins.agem.per_shard=2.5", "A-GEM per_shard: expected an integer"),
        ("der", "strategy.plugins.der.size=0", "DER size: expected an integer >= 1. Received 0"),
        ("gdumb", "strategy.plugins.gdumb.epochs=0", "GDumb epochs: expected an integer >= 1"),
        ("pnn", "strategy.plugins.pnn.input_laterals=1", "PNN input_laterals: expected true"),
    ],
)
def test_every_plugins_options_are_checked_before_any_work_in_its_own_words(
    tiny_cfg, strategy, override, message
):
    cfg = tiny_cfg(f"strategy={strategy}", override)
    key = override.partition("=")[0]
    assert key in plugin_rules(cfg)
    with pytest.raises(ConfigError) as caught:
        validate_config(cfg)
    assert str(caught.value).startswith(message) and str(caught.value).endswith(f"({key})")
    plugin = get_class(cfg.strategy.plugins[key.split(".")[2]]["_target_"])
    with pytest.raises(ValueError, match=re.escape(message)):  # the constructor: the same rule
        plugin(**{key.rpartition(".")[2]: OmegaConf.select(cfg, key)})
