"""The block diagram is read from the netlist: streams give one edge with the data."""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from sdtforge.hdl.accelerator import Accelerator
from sdtforge.hdl.compile import AccelConfig
from sdtforge.hdl.diagram import component_graph, draw


class _Stage(wiring.Component):
    def __init__(self):
        super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.o.valid.eq(self.i.valid), self.o.payload.eq(self.i.payload + 1),
                     self.i.ready.eq(self.o.ready)]
        return m


class _Chain(wiring.Component):
    def __init__(self):
        super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.a = a = _Stage()
        m.submodules.b = b = _Stage()
        wiring.connect(m, wiring.flipped(self.i), a.i)
        wiring.connect(m, a.o, b.i)
        wiring.connect(m, b.o, wiring.flipped(self.o))
        return m


def test_a_chain_of_streams_is_a_chain():
    graph = component_graph(_Chain())
    assert graph.nodes == (("in", "ports"), ("a", "_Stage"), ("b", "_Stage"), ("out", "ports"))
    # ready runs against the data and is not an edge of its own.
    assert graph.edges == {("a", "b"): (("o", "i"),), ("b", "out"): (("o", "o"),),
                           ("in", "a"): (("i", "i"),)}


def test_accelerator_edges():
    graph = component_graph(Accelerator(AccelConfig(weights_depth=64)))
    edges = graph.edges
    assert edges["pe", "weights"] == (("w_req", "req"),)
    assert edges["weights", "pe"] == (("rsp", "w_rsp"),)
    # Fetch (addresses the spike memory, takes its words) → word queue → encoder → the layer
    # controller (the event's weight row) → command queue → PE array.
    assert edges["fetch", "spk"] == (("read", "read"),)
    assert edges["spk", "fetch"] == (("read", "data"),)
    assert edges["fetch", "wq"] == (("o", "w"),)
    assert edges["wq", "enc"] == (("r", "i"),)
    assert edges["enc", "ctrl"] == (("o", "events"),)
    assert edges["ctrl", "cq"] == (("cmd", "w"),)
    assert ("control", "cq") not in edges     # the top's own logic only wires
    assert edges["prog", "ctrl"] == (("descriptor", "descriptor"), ("first", "program"),
                                     ("loaded", "program"))
    assert edges["cq", "pe"] == (("r", "i"),)
    assert ("weights", "write") in edges["loader", "weights"]
    assert edges["emit", "out"] == (("result", "result"),)
    # The SDSA stage reads the spike memory itself; its writes, like every spike write, pass
    # the top's write register (hdl.ram).
    assert edges["sdsa", "spk"] == (("read", "read"),)
    assert ("write", "logic") in edges["sdsa", "control"]
    assert edges["spk", "sdsa"] == (("read", "data"),)
    assert ("pe", "cq") not in edges           # the queue's read enable only
    assert "| cq | pe | r → i |" in graph.table()


def test_drawing_is_deterministic(tmp_path):
    graph = component_graph(Accelerator(AccelConfig(weights_depth=64)))
    draw(graph, tmp_path / "a.png")
    draw(component_graph(Accelerator(AccelConfig(weights_depth=64))), tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_documented_edges_match_the_code(tmp_path):
    """``docs/engine-blocks.md`` is the edge list of the accelerator for shipped digits-tiny
    at P = 8, W = 16 with every stage (the POOL_OR stage too, which digits-tiny does not need;
    regenerate with the command in docs/architecture.md §1)."""
    import dataclasses
    from pathlib import Path

    from sdtforge.hdl.compile import compile_model
    from sdtforge.model import SHIPPED_CHECKPOINTS
    from sdtforge.quantize.quantizer import quantize_checkpoint

    config = compile_model(quantize_checkpoint(SHIPPED_CHECKPOINTS["digits-tiny"]), lanes=8,
                           width=16).config
    config = dataclasses.replace(config, pool_or=1)
    doc = Path(__file__).parents[2] / "docs" / "engine-blocks.md"
    assert doc.read_text() == component_graph(Accelerator(config)).table() + "\n"
