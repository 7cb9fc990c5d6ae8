"""``sdtforge.hdl.verilog``: memories that start empty get no initial rows in the Verilog."""

import re

from amaranth import Module, Signal
from amaranth.back import verilog
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from sdtforge.hdl.compile import compile_model
from sdtforge.hdl.verilog import TOP, accelerator_verilog, zero_memories_uninitialised
from sdtforge.quantize.synthetic import random_model, tiny_config


class _TwoMemories(wiring.Component):
    addr: In(4)
    empty_data: Out(8)
    rom_data: Out(8)

    def elaborate(self, platform):
        m = Module()
        m.submodules.empty = empty = memory.Memory(shape=8, depth=16, init=[])
        m.submodules.rom = rom = memory.Memory(shape=8, depth=16, init=[0, 0x5a, 0, 0xc3])
        for mem, out in ((empty, self.empty_data), (rom, self.rom_data)):
            port = mem.read_port()
            m.d.comb += [port.addr.eq(self.addr), out.eq(port.data)]
        wr = empty.write_port()
        m.d.comb += [wr.addr.eq(self.addr), wr.data.eq(self.addr), wr.en.eq(Signal())]
        return m


def _initialised(text):
    """Names of the memories the Verilog gives initial rows."""
    return set(re.findall(r"initial begin\n\s*(\w+)\[\d+\] = ", text))


def test_only_the_empty_memory_loses_its_initial_rows():
    plain = verilog.convert(_TwoMemories(), name="top", emit_src=False)
    with zero_memories_uninitialised():
        text = verilog.convert(_TwoMemories(), name="top", emit_src=False)
    assert _initialised(plain) == {"empty", "rom"}
    assert _initialised(text) == {"rom"}
    assert "rom[1] = 8'h5a;" in text and "rom[3] = 8'hc3;" in text
    # The converter is itself again afterwards.
    assert verilog.convert(_TwoMemories(), name="top", emit_src=False) == plain


def test_accelerator_verilog_has_no_zero_rows_and_is_deterministic():
    config = compile_model(random_model(tiny_config(), seed=1)).config
    text = accelerator_verilog(config)
    assert f"module {TOP}(" in text
    assert _initialised(text) == set()
    assert accelerator_verilog(config) == text
