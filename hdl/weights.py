"""The weight path as a stream: row requests in, weight rows out, in order, with back-pressure.

The PE array (:class:`~sdtforge.hdl.pe_array.PEArray`) asks for one weight row per event on
``w_req`` and takes the rows, in request order, from ``w_rsp``; it waits for a row that is
late. Whatever answers those two streams is the weight source: on-chip block RAM
(:class:`WeightMemory`), a synchronous memory outside the accelerator such as the iCE40's
SPRAM (:class:`ReadPortWeights`), or a prefetch buffer in front of external DRAM. A source
that answers every request in the following cycle, as both here do, costs the engine no cycle.

The rows are ``AccelConfig.lane_layout("weights")`` (``ArrayLayout(signed(weight_bits), P)``).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .params import check_positive
from .ram import loader_filled

__all__ = ["ReadPortWeights", "WeightMemory", "weight_source_signature"]


def weight_source_signature(shape, addr_width):
    """The source's side of the weight path: ``req`` (row addresses in), ``rsp`` (rows out)."""
    return wiring.Signature({
        "req": In(stream.Signature(addr_width)),
        "rsp": Out(stream.Signature(shape)),
    })


class ReadPortWeights(wiring.Component):
    """A weight source over a synchronous read port (block RAM, SPRAM).

    Cycle contract: a request accepted in cycle ``c`` is answered in cycle ``c + 1``; a row
    not taken stays on ``rsp`` (the port's ``en`` is low, so its data holds) and ``req`` is
    not ready until it is taken. Requests and rows therefore flow one per cycle, and a
    consumer that takes every row at once sees one cycle of latency and no bubble.

    Parameters
    ----------
    shape : ShapeLike
        One weight row.
    addr_width : int
        Row address width.

    Members
    -------
    req : ``In(stream.Signature(addr_width))``
        Row addresses.
    rsp : ``Out(stream.Signature(shape))``
        The rows, in request order.
    port : ``In(memory.ReadPort.Signature(addr_width=addr_width, shape=shape))``
        The memory's read port (one cycle of latency, data held while ``en`` is low).
    """

    def __init__(self, shape, addr_width):
        if not isinstance(addr_width, int) or isinstance(addr_width, bool) or addr_width < 0:
            raise TypeError(f"Address width must be a non-negative integer, not {addr_width!r}")
        super().__init__({
            **weight_source_signature(shape, addr_width).members,
            "port": In(memory.ReadPort.Signature(addr_width=addr_width, shape=shape)),
        })

    def elaborate(self, platform):
        m = Module()
        full = Signal()
        take = ~full | self.rsp.ready           # the row register is free this cycle
        m.d.comb += [
            self.req.ready.eq(take),
            self.port.addr.eq(self.req.payload),
            self.port.en.eq(take),
            self.rsp.valid.eq(full),
            self.rsp.payload.eq(self.port.data),
        ]
        with m.If(take):
            m.d.sync += full.eq(self.req.valid)
        return m


class WeightMemory(wiring.Component):
    """On-chip weight rows (``lib.memory.Memory``) served as a weight source.

    The same cycle contract as :class:`ReadPortWeights`, which it uses over its memory.

    Parameters
    ----------
    shape : ShapeLike
        One weight row.
    depth : int
        Number of rows.

    Members
    -------
    req, rsp :
        As :class:`ReadPortWeights`.
    write : ``Out(memory.WritePort.Signature(...))``
        Row writes (model loading, while no request is in flight).
    """

    def __init__(self, shape, depth):
        self._shape = shape
        self._depth = depth
        check_positive("Weight depth", depth)
        aw = ceil_log2(depth)    # the memory's own port width
        super().__init__({
            **weight_source_signature(shape, aw).members,
            "write": Out(memory.WritePort.Signature(addr_width=aw, shape=shape)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = loader_filled(memory.Memory(shape=self._shape,
                                                             depth=self._depth, init=[]))
        aw = len(self.req.payload)
        m.submodules.reader = reader = ReadPortWeights(self._shape, aw)
        rd, wr = mem.read_port(), mem.write_port()
        m.d.comb += [rd.addr.eq(reader.port.addr), rd.en.eq(reader.port.en),
                     reader.port.data.eq(rd.data)]
        wiring.connect(m, wiring.flipped(self.write), wr)
        wiring.connect(m, wiring.flipped(self.req), reader.req)
        wiring.connect(m, reader.rsp, wiring.flipped(self.rsp))
        return m
