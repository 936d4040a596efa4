"""The strategy list and report order come from conf/strategy/*.yaml alone."""

import pandas as pd
import pytest
from hydra.utils import get_class
from omegaconf import OmegaConf

from forgetbench.results.aggregate import order_strategies
from forgetbench.strategies import catalog


@pytest.fixture
def strategy_dir(tmp_path, monkeypatch):
    """An empty strategy config folder in place of conf/strategy/ (cache cleared around it)."""
    monkeypatch.setattr(catalog, "STRATEGY_DIR", tmp_path)
    catalog.strategy_order.cache_clear()
    yield tmp_path
    catalog.strategy_order.cache_clear()


def test_every_strategy_config_has_a_distinct_order_and_runs_under_its_file_name(compose_config):
    files = sorted(p.stem for p in catalog.STRATEGY_DIR.glob("*.yaml"))
    order = catalog.strategy_order()
    assert sorted(order) == files
    assert len(set(order.values())) == len(order)
    for name in files:
        strategy = compose_config([f"strategy={name}"]).strategy
        default = OmegaConf.select(strategy, "name") or get_class(strategy._target_).name
        assert default == name  # the runs' strategy column is the file name


def test_report_order_follows_the_configs_and_unknown_strategies_come_last(strategy_dir):
    for name, order in [("b", 5), ("a", 20), ("c", 5.5)]:
        (strategy_dir / f"{name}.yaml").write_text(f"_target_: x.Y\norder: {order}\n")
    assert catalog.strategy_names() == ["b", "c", "a"]
    table = pd.DataFrame({"strategy": ["zz", "a", "c", "b", "a"], "k": range(5)})
    ordered = order_strategies(table)
    assert ordered["strategy"].tolist() == ["b", "c", "a", "a", "zz"]
    assert ordered["k"].tolist() == [3, 2, 1, 4, 0]  # stable within a strategy


def test_a_strategy_config_without_order_is_named(strategy_dir):
    (strategy_dir / "mine.yaml").write_text("_target_: x.Y\n")
    with pytest.raises(ValueError, match=r"mine.yaml: expected a number `order`.*Received None"):
        catalog.strategy_names()
