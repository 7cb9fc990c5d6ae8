"""``bench/ff_packing.py``: flip-flops by what drives their D input."""

import json

from _bench import load_bench
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


def _tool():
    return load_bench("ff_packing")


def _cell(kind, **ports):
    dirs = {p: ("output" if p in ("O", "Q") else "input") for p in ports}
    return {"type": kind, "port_directions": dirs, "connections": ports}


NETLIST = {"modules": {"top": {
    "attributes": {"top": 1},
    "cells": {
        # LUT 2 drives flip-flop a alone: packable.
        "l1": _cell("SB_LUT4", I0=[1], O=[2]),
        "fa": _cell("SB_DFF", D=[2], Q=[3]),
        # LUT 4 drives flip-flop b and LUT l3: fan-out.
        "l2": _cell("SB_LUT4", I0=[3], O=[4]),
        "fb": _cell("SB_DFF", D=[4], Q=[5]),
        "l3": _cell("SB_LUT4", I0=[4], O=[6]),
        # Flip-flop c copies flip-flop b; d takes a constant.
        "fc": _cell("SB_DFFE", D=[5], Q=[7]),
        "fd": _cell("SB_DFF", D=["0"], Q=[8]),
    },
    "netnames": {"a": {"bits": [3]}, "b": {"bits": [5]}, "c": {"bits": [7]},
                 "d": {"bits": [8]}, "x": {"bits": [1]}},
}}}


def test_classify_by_driver(tmp_path, capsys):
    tool = _tool()
    counts, registers = tool.classify(NETLIST)
    assert counts == {"lut-packable": 1, "lut-fanout": 1, "SB_DFF": 1, "const": 1}
    assert registers == {("b", "lut-fanout"): 1, ("c", "SB_DFF"): 1, ("d", "const"): 1}
    path = tmp_path / "n.json"
    path.write_text(json.dumps(NETLIST))
    assert tool.main([str(path), "--out", str(tmp_path / "o.json")]) == 0
    out = json.loads((tmp_path / "o.json").read_text())
    assert out["flip_flops"] == 4 and out["by_driver"]["lut-packable"] == 1
    assert "4 flip-flops" in capsys.readouterr().out
    assert tool.main([str(tmp_path / "missing.json")]) == 2


class _Ports(wiring.Component):
    """A queue with its ports as a component's (for a synthesized netlist)."""

    def __init__(self, queue):
        self._queue = queue
        super().__init__({"w_data": In(queue.width), "w_en": In(1), "r_en": In(1),
                          "r_data": Out(queue.width), "w_rdy": Out(1), "r_rdy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.q = q = self._queue
        m.d.comb += [q.w_data.eq(self.w_data), q.w_en.eq(self.w_en), q.r_en.eq(self.r_en),
                     self.r_data.eq(q.r_data), self.w_rdy.eq(q.w_rdy), self.r_rdy.eq(q.r_rdy)]
        return m


def test_the_register_queue_packs_half_its_entries_where_the_sync_fifo_packs_none():
    """A 32-bit two-entry queue on the iCE40 (``synth_ice40``, classified as nextpnr packs):
    ``SyncFIFO(depth=2)`` keeps both entries in flip-flops fed by the write data, none of which
    can share a logic cell; ``hdl.queue.RegisterQueue``'s head register packs with its
    multiplexer, a logic cell saved per bit (the engine's stage queues use it)."""
    from amaranth.lib import fifo

    from sdtforge.hdl.queue import RegisterQueue
    from sdtforge.hdl.synth import ice40_netlist

    tool = _tool()
    ours, _ = tool.classify(ice40_netlist(_Ports(RegisterQueue(width=32))))
    lib, _ = tool.classify(ice40_netlist(_Ports(fifo.SyncFIFO(width=32, depth=2))))
    # The entries: every one of the library's fed by the write data (its only packable
    # flip-flops are its pointers and level); the queue's tail alone.
    assert lib["input"] == 64 and lib["lut-packable"] <= 4
    assert ours["input"] == 32 and ours["lut-packable"] >= 32
