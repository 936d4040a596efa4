"""The plain-data part of an object: what a checkpoint keeps of a plugin's Python-side state.

Plain data is what can be written and read back without the objects of a live run: ``None``,
booleans, numbers, strings, numpy arrays, numpy scalars and random generators, lists, tuples,
sets and dicts of them, and objects of this package whose attributes are all plain (replay and
GDumb memories). Networks, variables, traced functions and closures are not: a plugin's
``setup`` makes them again, and graph variables are checkpointed with the engine.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_ATOMS = (type(None), bool, int, float, str, np.ndarray, np.generic, np.random.Generator)
PACKAGE = "forgetbench."


def is_plain(value: Any) -> bool:
    """Whether ``value`` is plain data (see the module docstring)."""
    if isinstance(value, _ATOMS):
        return True
    if isinstance(value, list | tuple | set | frozenset):
        return all(is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(is_plain(k) and is_plain(v) for k, v in value.items())
    if type(value).__module__.startswith(PACKAGE) and hasattr(value, "__dict__"):
        return not callable(value) and all(is_plain(v) for v in vars(value).values())
    return False


def plain_state(obj: Any) -> dict:
    """The attributes of ``obj`` that hold plain data, by name."""
    return {name: value for name, value in vars(obj).items() if is_plain(value)}


def restore_plain_state(obj: Any, state: dict) -> None:
    """Sets the attributes of ``obj`` from ``state``.

    An attribute holding an object of this package of the same type is updated in place, so
    other references to it (``ctx.memories``) see the restored contents.
    """
    for name, value in state.items():
        current = getattr(obj, name, None)
        same_object = type(current) is type(value) and hasattr(current, "__dict__")
        if same_object and type(value).__module__.startswith(PACKAGE):
            vars(current).clear()
            vars(current).update(vars(value))
        else:
            setattr(obj, name, value)
