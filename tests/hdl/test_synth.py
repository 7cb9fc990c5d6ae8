"""The per-module iCE40 breakdown used by ``bench/board_fit.py``."""

from sdtforge.hdl.event_encoder import EventEncoder
from sdtforge.hdl.sdsa import SDSAUnit
from sdtforge.hdl.synth import module_stats, yosys_stats


def test_module_stats_counts_each_module_once():
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    class Pair(wiring.Component):
        x: In(8)
        y: Out(8)

        def elaborate(self, platform):
            m = Module()
            m.submodules.enc = enc = EventEncoder(8, 4)
            m.submodules.sdsa = sdsa = SDSAUnit(16, 8, 4, mode="lif", theta_width=4)
            # Both units drive the output, so neither is optimized away.
            m.d.comb += [
                enc.i.valid.eq(self.x[0]), enc.i.payload.data.eq(self.x),
                enc.i.payload.word.eq(self.x[4:]), enc.i.payload.last.eq(self.x[1]),
                enc.o.ready.eq(1),
                sdsa.i.valid.eq(self.x[2]), sdsa.i.payload.op.eq(self.x[:2]),
                sdsa.i.payload.word.eq(self.x[3]), sdsa.i.payload.a.eq(self.x),
                sdsa.i.payload.b.eq(~self.x), sdsa.i.payload.first.eq(self.x[5]),
                sdsa.i.payload.last.eq(self.x[6]), sdsa.o.ready.eq(1), sdsa.theta.eq(3),
            ]
            m.d.sync += self.y.eq(enc.o.payload.addr ^ sdsa.o.payload.data ^ self.x)
            return m

    stats = module_stats(Pair())
    assert set(stats) == {"top", "top.enc", "top.sdsa"}
    # The hierarchy's totals are not folded into the last module: each submodule matches
    # a stand-alone synthesis of itself within the LUT mapper's noise.
    alone = yosys_stats(SDSAUnit(16, 8, 4, mode="lif", theta_width=4))["ice40"]
    assert stats["top.sdsa"]["EBR"] == alone.get("SB_RAM40_4K", 0) + sum(
        n for c, n in alone.items() if c.endswith("SB_RAM40_4K") and c != "SB_RAM40_4K")
    assert 0.5 * alone["SB_LUT4"] < stats["top.sdsa"]["SB_LUT4"] < 2 * alone["SB_LUT4"]
    assert stats["top"]["FF"] >= 8 and stats["top"]["SB_LUT4"] > 0
