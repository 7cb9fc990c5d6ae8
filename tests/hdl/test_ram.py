"""Loader-filled memories: no read/write collision logic in the netlist; only they are marked."""

import re

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from sdtforge.errors import UserError
from sdtforge.hdl.accelerator import Accelerator
from sdtforge.hdl.compile import AccelConfig
from sdtforge.hdl.ram import (
    NO_RW_CHECK,
    disjoint_maps,
    loader_filled,
    registered_read,
    ring_window,
    rows_apart,
)
from sdtforge.hdl.synth import yosys_stats


class _OneMemory(wiring.Component):
    """A 256 × 16 memory with one write and one read port, marked or not."""

    ra: In(8)
    wa: In(8)
    wd: In(16)
    we: In(1)
    rd: Out(16)

    def __init__(self, marked):
        self._marked = marked
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        mem = memory.Memory(shape=16, depth=256, init=[])
        m.submodules.mem = loader_filled(mem) if self._marked else mem
        wr, rd = mem.write_port(), mem.read_port()
        m.d.comb += [wr.addr.eq(self.wa), wr.data.eq(self.wd), wr.en.eq(self.we),
                     rd.addr.eq(self.ra), self.rd.eq(rd.data)]
        return m


def _flip_flops(cells):
    return sum(n for cell, n in cells.items() if cell.startswith("SB_DFF"))


def test_marked_memory_has_no_collision_logic():
    plain = yosys_stats(_OneMemory(False))["ice40"]
    marked = yosys_stats(_OneMemory(True))["ice40"]
    # Unmarked, Yosys emulates read-old on a collision: the write delayed by a register
    # (16 data + 8 address bits and the enable) and a multiplexer on the read data.
    assert _flip_flops(plain) >= 25 and plain.get("SB_LUT4", 0) >= 16
    # Marked, the block RAM alone.
    assert _flip_flops(marked) == 0 and marked.get("SB_LUT4", 0) <= 1
    assert marked.get("SB_RAM40_4K") == plain.get("SB_RAM40_4K") == 1


def _marked_memories(component):
    """Names of the memories in ``component``'s RTLIL that carry ``no_rw_check``."""
    text = rtlil.convert(component, emit_src=False)
    return sorted(re.findall(rf"attribute \\{NO_RW_CHECK} 1\n\s*memory width \d+ size \d+ "
                             r"\\(\S+)", text))


@pytest.mark.parametrize("external", [False, True])
def test_accelerator_marks_only_the_collision_free_memories(external):
    cfg = AccelConfig(lanes=2, width=8, weights_depth=64, external_weights=external)
    # The weights (on chip), biases, thresholds, program, pixels and shifts: the memories the
    # loader writes while the engine is idle, the spike maps (disjoint per operation), the
    # stream (a row read before it is written) and the logits (read only once the program has
    # ended; the result emitter's "mem"). The membrane and SDSA memories keep it.
    expected = ["b_mem", "mem", "mem", "pix", "shm", "spk", "t_mem", "xs"] + (
        [] if external else ["mem"])
    assert _marked_memories(Accelerator(cfg)) == sorted(expected)


@pytest.mark.parametrize("mark", [loader_filled, disjoint_maps, rows_apart, ring_window])
def test_marks_take_a_memory_only(mark):
    with pytest.raises(TypeError, match="memory.Memory"):
        mark(object())


class _RegisteredRead(wiring.Component):
    """A 16 × 8 memory holding ``3 · row`` in each row, read through :func:`registered_read`."""

    addr: In(4)
    en: In(1)
    data: Out(8)

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=8, depth=16, init=[3 * k for k in range(16)])
        r = registered_read(m, mem.read_port(), "r")
        m.d.comb += [r.addr.eq(self.addr), r.en.eq(self.en), self.data.eq(r.data)]
        return m


def test_a_registered_read_answers_three_cycles_later_and_holds():
    """The address and enable of cycle ``c`` give the row's data in cycle ``c + 3``; a cycle
    without a read keeps the data of the last one (what the stream's readers rely on)."""
    dut = _RegisteredRead()
    seen = []
    asks = [(5, 1), (6, 1), (7, 0), (9, 0), (2, 1), (0, 0), (0, 0), (0, 0), (0, 0)]

    async def tb(ctx):
        for addr, en in asks:
            ctx.set(dut.addr, addr)
            ctx.set(dut.en, en)
            seen.append(ctx.get(dut.data))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    # Rows 5 and 6 in cycles 3 and 4; held through the two cycles without a read; row 2 in
    # cycle 7 and held.
    assert seen[3:] == [15, 18, 18, 18, 6, 6]


def test_a_three_cycle_stream_read_needs_one_write_back_cycle_per_row():
    with pytest.raises(UserError, match="stream_latency must be 1 or 3"):
        AccelConfig(stream_latency=2)
    with pytest.raises(UserError, match="needs writeback_cycles 1"):
        AccelConfig(lanes=8, writeback_cycles=8, stream_latency=3)
    assert AccelConfig(lanes=8, stream_latency=3).stream_latency == 3
