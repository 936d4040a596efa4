"""The engines of a process: runs that share a network, optimizer and policy share one."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from forgetbench.train.engine import Engine

MAX_CACHED_ENGINES = 8
_ENGINES: OrderedDict[str, Engine] = OrderedDict()


def engine_for(key: str | None, build: Callable[[], Engine]) -> Engine:
    """The process's engine for ``key``, built once (``key=None``: always a new one).

    The least recently used beyond ``MAX_CACHED_ENGINES`` are dropped.

    Runs with one key share the traced loops (one per plugin signature), the evaluator's
    compiled pass and their graph variables: the key must cover everything the graph depends on
    besides the plugins' registrations (network, shapes, optimizer, remainder policy,
    accumulation). An engine whose network a plugin replaced is not reused.
    """
    if key is None:
        return build()
    engine = _ENGINES.pop(key, None)
    if engine is None or not engine.reusable:
        engine = build()
    _ENGINES[key] = engine
    while len(_ENGINES) > MAX_CACHED_ENGINES:
        _ENGINES.popitem(last=False)
    return engine


def cached_engine(key: str | None) -> Engine | None:
    """The reusable engine cached for ``key``, if any (without building one)."""
    engine = _ENGINES.get(key) if key is not None else None
    return engine if engine is not None and engine.reusable else None


def clear_engines() -> None:
    """Forgets every cached engine."""
    _ENGINES.clear()
