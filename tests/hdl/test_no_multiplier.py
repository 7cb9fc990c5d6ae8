"""Every unit synthesizes without multipliers, dividers or DSP blocks (Yosys, iCE40)."""

import pytest
from amaranth.hdl import signed
from amaranth.lib.data import ArrayLayout

from sdtforge.hdl.event_encoder import EventEncoder
from sdtforge.hdl.lif import LIFUnit
from sdtforge.hdl.pe_array import PEArray
from sdtforge.hdl.pool import IntMaxPool, SpikeMaxPool
from sdtforge.hdl.residual import AlignAdd
from sdtforge.hdl.sdsa import SDSAUnit
from sdtforge.hdl.synth import FORBIDDEN_CELLS, yosys_stats
from sdtforge.hdl.weights import WeightMemory

UNITS = {
    "event_encoder": lambda: EventEncoder(16, 4),
    "pe_array": lambda: PEArray(4, 16, weight_depth=64, bias_depth=8),
    "weight_memory": lambda: WeightMemory(ArrayLayout(signed(8), 4), 64),
    "lif": lambda: LIFUnit(4, 64, 16, theta_width=12),
    "sdsa_lif": lambda: SDSAUnit(32, 8, 16),
    "sdsa_or": lambda: SDSAUnit(32, 8, 16, mode="or"),
    "spike_maxpool": lambda: SpikeMaxPool(16),
    "int_maxpool": lambda: IntMaxPool(4, 16),
    "align_add": lambda: AlignAdd(4, 16, 16, 7),
}


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_no_multiplier(unit):
    # Every memory as the unit's RTL has it (with Yosys' collision logic): marked as the board
    # build marks it, a standalone WeightMemory is only block RAM and a register, a netlist
    # the YoWASP Yosys 0.69 ABC9 step fails on. Multipliers do not depend on it.
    stats = yosys_stats(UNITS[unit](), board_memories=False)
    assert stats["coarse"] and stats["ice40"].get("SB_LUT4", 0) > 0
    for level in ("coarse", "ice40"):
        found = {cell: n for cell, n in stats[level].items() if cell in FORBIDDEN_CELLS}
        assert not found, f"{unit}: {level} netlist contains {found}"
