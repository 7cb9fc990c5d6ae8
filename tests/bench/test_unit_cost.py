"""``bench/unit_cost.py``: every unit it measures still elaborates with the arguments it passes.

The bench runs Yosys for minutes and is not part of the test run, so a unit whose constructor
changes would otherwise break it unnoticed (as ``PEArray``'s ``external_weights`` once did).
"""

import importlib.util
from pathlib import Path

import pytest
from amaranth.hdl import Fragment

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("unit_cost", ROOT / "bench" / "unit_cost.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BENCH = _bench()


@pytest.mark.parametrize("unit", sorted(BENCH.UNITS))
@pytest.mark.parametrize("lanes", [4, 16])
def test_every_unit_elaborates(unit, lanes):
    component = BENCH.UNITS[unit](lanes)
    assert Fragment.get(component, None) is not None
