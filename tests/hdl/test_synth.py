"""The per-module iCE40 breakdown used by ``bench/board_fit.py``, and the JSON netlist reader
of the bench tools."""

import pytest

from sdtforge.hdl.event_encoder import EventEncoder
from sdtforge.hdl.sdsa import SDSAUnit
from sdtforge.hdl.synth import YosysNetlist, module_stats, yosys_stats


def _module(top=False):
    """A LUT (bits 2, 3 → 4) driving two flip-flops' ``D``; bit 4 has two names."""
    lut = {"type": "LUT4", "port_directions": {"A": "input", "B": "input", "Z": "output"},
           "connections": {"A": [2], "B": [3], "Z": [4]}}
    ffs = {f"ff{k}": {"type": "TRELLIS_FF", "port_directions": {"DI": "input", "Q": "output"},
                      "connections": {"DI": [4], "Q": [5 + k]}} for k in range(2)}
    return {"attributes": {"top": 1} if top else {}, "cells": {"lut": lut, **ffs},
            "netnames": {"$auto$x.v:3$4": {"bits": [4]}, "core.sum": {"bits": [4, "0"]},
                         "core.q": {"bits": [5, 6]}, "a": {"bits": [2]}}}


def test_yosys_netlist_reads_the_top_module():
    net = YosysNetlist({"modules": {"sub": _module(), "top": _module(top=True)}})
    assert net.drivers == {4: ("lut", "Z"), 5: ("ff0", "Q"), 6: ("ff1", "Q")}
    assert net.fanout[4] == 2 and net.fanout[2] == 1 and net.fanout[5] == 0
    assert net.names[4] == "core.sum" and net.names[6] == "core.q"
    assert net.driver_type(4) == "LUT4" and net.driver_type(2) is None
    # A single module needs no top attribute; two modules without one are refused.
    assert YosysNetlist({"modules": {"only": _module()}}).drivers[4] == ("lut", "Z")
    with pytest.raises(ValueError, match="one top module, found 0"):
        YosysNetlist({"modules": {"a": _module(), "b": _module()}})


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
