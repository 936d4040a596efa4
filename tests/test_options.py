"""Config value rules: the words of each rule, and plugins' own rules checked before any work."""

import pytest

from forgetbench.config_check import ConfigError
from forgetbench.options import (
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
