"""``bench/unit_cost.py``: every unit it measures still elaborates with the arguments it passes.

The bench runs Yosys for minutes and is not part of the test run, so a unit whose constructor
changes would otherwise break it unnoticed (as ``PEArray``'s ``external_weights`` once did).
"""

import pytest
from _bench import load_bench
from amaranth.hdl import Fragment

BENCH = load_bench("unit_cost")


@pytest.mark.parametrize("unit", sorted(BENCH.UNITS))
@pytest.mark.parametrize("lanes", [4, 16])
def test_every_unit_elaborates(unit, lanes):
    component = BENCH.UNITS[unit](lanes)
    assert Fragment.get(component, None) is not None
