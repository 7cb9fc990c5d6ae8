"""The weight path as a stream: row requests in, weight rows out, in order, with back-pressure.

The PE array (:class:`~sdtforge.hdl.pe_array.PEArray`) asks for one weight row per event on
``w_req`` and takes the rows, in request order, from ``w_rsp``; it waits for a row that is
late. Whatever answers those two streams is the weight source: on-chip block RAM
(:class:`WeightMemory`), a synchronous memory outside the accelerator such as the iCE40's
SPRAM (:class:`ReadPortWeights`), or a prefetch buffer in front of external DRAM. A source
that answers every request in the following cycle, as both here do, costs the engine no cycle.

The rows are ``AccelConfig.lane_layout("weights")`` (``ArrayLayout(signed(weight_bits), P)``).
With two events per command (``AccelConfig.events``) a request names two rows and the source
answers both at once: :class:`WeightMemory` reads them on its block RAMs' two ports.
"""

from amaranth.hdl import Cat, Module, Mux, Shape, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .params import check_positive
from .pe_array import weight_request_shape, weight_response_shape
from .ram import loader_filled

__all__ = ["ReadPortWeights", "WeightMemory", "dual_port_column", "weight_source_signature"]

#: The (depth, width) aspects of a 16-Kbit true dual-port block RAM (the ECP5's ``DP16KD``),
#: deepest last.
DUAL_PORT_ASPECTS = ((1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))


def dual_port_column(depth):
    """``(bits, blocks deep)``: the widest column of a ``depth``-row memory that one 16-Kbit
    true dual-port block holds in depth (or the 1-bit column, that many blocks deep)."""
    for rows, bits in DUAL_PORT_ASPECTS:
        if depth <= rows:
            return bits, 1
    return 1, -(-depth // DUAL_PORT_ASPECTS[-1][0])


def weight_source_signature(shape, addr_width, events=1):
    """The source's side of the weight path: ``req`` (row addresses in), ``rsp`` (rows out);
    with ``events = 2`` two of each per item
    (:func:`~sdtforge.hdl.pe_array.weight_request_shape`)."""
    return wiring.Signature({
        "req": In(stream.Signature(weight_request_shape(addr_width, events))),
        "rsp": Out(stream.Signature(weight_response_shape(shape, events))),
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
    port1 : ``In(memory.ReadPort.Signature(addr_width=addr_width, shape=shape))``
        With ``events = 2``: the second row's read port, used in step with ``port``.
    """

    def __init__(self, shape, addr_width, *, events=1):
        if not isinstance(addr_width, int) or isinstance(addr_width, bool) or addr_width < 0:
            raise TypeError(f"Address width must be a non-negative integer, not {addr_width!r}")
        self._events = events
        port = In(memory.ReadPort.Signature(addr_width=addr_width, shape=shape))
        super().__init__({
            **weight_source_signature(shape, addr_width, events).members,
            "port": port, **({"port1": port} if events == 2 else {}),
        })

    def elaborate(self, platform):
        m = Module()
        full = Signal()
        take = ~full | self.rsp.ready           # the row register is free this cycle
        one = self._events == 1
        m.d.comb += [
            self.req.ready.eq(take),
            self.port.addr.eq(self.req.payload if one else self.req.payload.addr),
            self.port.en.eq(take),
            self.rsp.valid.eq(full),
            (self.rsp.payload if one else self.rsp.payload.row).eq(self.port.data),
        ]
        if not one:
            m.d.comb += [self.port1.addr.eq(self.req.payload.addr1), self.port1.en.eq(take),
                         self.rsp.payload.row1.eq(self.port1.data)]
        with m.If(take):
            m.d.sync += full.eq(self.req.valid)
        return m


class WeightMemory(wiring.Component):
    """On-chip weight rows (``lib.memory.Memory``) served as a weight source.

    The same cycle contract as :class:`ReadPortWeights`, which it uses over its memory. With
    ``events = 2`` the memory has two read ports; the loader's write shares the first one's
    address (it writes only while the engine is idle), so a true dual-port block RAM (the
    ECP5's ``DP16KD``) holds the rows once and reads two per cycle. The rows are then stored
    as columns of :func:`dual_port_column` bits, one memory each, so that each column is one
    block deep: a row comes out of its blocks with no multiplexer over blocks in depth, and
    each block's two ports feed the few lanes its bits belong to (a row of 1 K × 18 blocks five
    deep had two 5:1 multiplexers per bit between the block RAMs and the lanes, and the 32-lane
    ULX3S top did not route; ``docs/boards.md`` §4b).

    Parameters
    ----------
    shape : ShapeLike
        One weight row.
    depth : int
        Number of rows.
    events : int
        Rows per request, 1 or 2.

    Members
    -------
    req, rsp :
        As :class:`ReadPortWeights`.
    write : ``Out(memory.WritePort.Signature(...))``
        Row writes (model loading, while no request is in flight).
    """

    def __init__(self, shape, depth, *, events=1):
        self._shape = shape
        self._depth = depth
        self._events = events
        check_positive("Weight depth", depth)
        aw = ceil_log2(depth)    # the memory's own port width
        super().__init__({
            **weight_source_signature(shape, aw, events).members,
            "write": Out(memory.WritePort.Signature(addr_width=aw, shape=shape)),
        })

    def elaborate(self, platform):
        m = Module()
        aw = len(self.write.addr)
        if self._events == 2:
            return self._columns(m, aw)
        m.submodules.mem = mem = loader_filled(memory.Memory(shape=self._shape,
                                                             depth=self._depth, init=[]))
        m.submodules.reader = reader = ReadPortWeights(self._shape, aw, events=self._events)
        rd, wr = mem.read_port(), mem.write_port()
        m.d.comb += [rd.addr.eq(reader.port.addr), rd.en.eq(reader.port.en),
                     reader.port.data.eq(rd.data)]
        wiring.connect(m, wiring.flipped(self.write), wr)
        wiring.connect(m, wiring.flipped(self.req), reader.req)
        wiring.connect(m, reader.rsp, wiring.flipped(self.rsp))
        return m

    def _columns(self, m, aw):
        """Two read ports over columns of the rows, a memory per column."""
        m.submodules.reader = reader = ReadPortWeights(self._shape, aw, events=2)
        # One address for the write and the first read: a block RAM port of its own each
        # would leave the second read a third port, and Yosys would store the rows twice.
        shared = Mux(self.write.en, self.write.addr, reader.port.addr)
        row_bits = Shape.cast(self._shape).width
        bits, _ = dual_port_column(self._depth)
        data, data1 = [], []
        for k, lo in enumerate(range(0, row_bits, bits)):
            hi = min(lo + bits, row_bits)
            mem = loader_filled(memory.Memory(shape=hi - lo, depth=self._depth, init=[]))
            m.submodules[f"col{k}"] = mem
            wr, rd, rd1 = mem.write_port(), mem.read_port(), mem.read_port()
            m.d.comb += [wr.addr.eq(shared), wr.data.eq(self.write.data.as_value()[lo:hi]),
                         wr.en.eq(self.write.en),
                         rd.addr.eq(shared), rd.en.eq(reader.port.en),
                         rd1.addr.eq(reader.port1.addr), rd1.en.eq(reader.port1.en)]
            data.append(rd.data)
            data1.append(rd1.data)
        m.d.comb += [reader.port.data.eq(Cat(*data)), reader.port1.data.eq(Cat(*data1))]
        wiring.connect(m, wiring.flipped(self.req), reader.req)
        wiring.connect(m, reader.rsp, wiring.flipped(self.rsp))
        return m
