"""Config value rules: what a key allows, said once and checked before any work.

A :class:`Rule` is a check and the words for what it allows. The core keys' rules live in
:data:`forgetbench.run.RULES`; a plugin declares its own in ``Plugin.options`` (checked under
``strategy.plugins.NAME.KEY``). A value a rule rejects is refused with
``Invalid config value KEY=VALUE. Expected ALLOWED.``, or, for a plugin with a ``label``, in
its own words: ``LABEL KEY: expected ALLOWED. Received VALUE``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rule:
    """A config value's check and what it allows, in words (``an integer >= 1``)."""

    check: Callable[[Any], bool]
    allowed: str

    def __call__(self, value: Any) -> bool:
        """Whether ``value`` is allowed."""
        return bool(self.check(value))


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def integer_at_least(minimum: int) -> Rule:
    """A whole number (an integer, or a float with an integer value) >= ``minimum``."""
    return Rule(lambda v: _number(v) and int(v) == v and v >= minimum, f"an integer >= {minimum}")


def int_at_least(minimum: int) -> Rule:
    """An ``int`` (not a float, not a bool) >= ``minimum``."""
    return Rule(
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= minimum,
        f"an integer >= {minimum}",
    )


def a_bool() -> Rule:
    """``true`` or ``false``."""
    return Rule(lambda v: isinstance(v, bool), "true or false")


def number_where(predicate: Callable[[float], bool], allowed: str) -> Rule:
    """A number (not a bool) for which ``predicate`` holds."""
    return Rule(lambda v: _number(v) and predicate(v), allowed)


def or_null(rule: Rule) -> Rule:
    """``rule``, or ``None``."""
    return Rule(lambda v: v is None or rule(v), f"{rule.allowed}, or null")


def one_of(values) -> Rule:
    """One of ``values``."""
    choices = list(values)
    return Rule(lambda v: v in choices, f"one of {choices}")


def option_message(label: str, key: str, value: Any, rule: Rule) -> str:
    """``LABEL KEY: expected ALLOWED. Received VALUE``: a plugin's own wording."""
    return f"{label} {key}: expected {rule.allowed}. Received {value!r}"


def invalid_message(key: str, value: Any, rule: Rule, missing: bool = False) -> str:
    """``Invalid config value KEY=VALUE. Expected ALLOWED.`` (``(missing)`` for no value)."""
    shown = "(missing)" if missing else repr(value)
    return f"Invalid config value {key}={shown}. Expected {rule.allowed}."
