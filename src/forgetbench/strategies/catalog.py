"""The strategies the config tree offers (``conf/strategy/*.yaml``) and their order in reports.

Each strategy config holds an ``order``: its position in reports' tables and figures (ascending;
ties by name). A strategy is named by its file, which is also the ``name`` of its runs.
"""

from __future__ import annotations

import functools

from omegaconf import OmegaConf

from forgetbench.config_check import CONF

STRATEGY_DIR = CONF / "strategy"


@functools.cache
def strategy_order() -> dict[str, float]:
    """``{strategy name: order}`` for every strategy config, sorted by order, then name.

    Raises:
        ValueError: naming a strategy config that has no numeric ``order``.
    """
    orders = {}
    for path in sorted(STRATEGY_DIR.glob("*.yaml")):
        order = OmegaConf.load(path).get("order")
        if isinstance(order, bool) or not isinstance(order, int | float):
            raise ValueError(
                f"Strategy config {path}: expected a number `order` (its position in reports). "
                f"Received {order!r}. Add a line such as `order: 150`."
            )
        orders[path.stem] = order
    return dict(sorted(orders.items(), key=lambda item: (item[1], item[0])))


def strategy_names() -> list[str]:
    """The strategies of the config tree, in report order."""
    return list(strategy_order())


def strategy_rank(name: str) -> int:
    """Position of strategy ``name`` in reports; strategies without a config come last."""
    names = strategy_names()
    return names.index(name) if name in names else len(names)
