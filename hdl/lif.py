"""LIF unit: L integer leaky integrate-and-fire neurons per cycle over a membrane memory.

Integer semantics (τ = 2, hard reset): ``H = (V + X) >> 1`` (arithmetic), ``S = H >= θ``,
``V' = S ? 0 : H``. The membranes of a layer live in a ``lib.memory.Memory`` of rows of L
neurons; thresholds are per channel in a second small memory of rows of L (a lane-serial
write-back feeds the P lanes of a row L at a time, and a row's thresholds are ``chunks`` rows,
one per chunk).
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .params import check_positive
from .ram import loader_filled

__all__ = ["LIFUnit"]


class LIFUnit(wiring.Component):
    """L-lane integer LIF with membrane state memory.

    One row (L neurons) is accepted per cycle. The cycle an input is accepted, the membrane row
    ``row`` and threshold row ``trow`` are read (with ``theta_ahead`` the threshold row was read
    in the cycle before, and is taken into a register now); the next cycle ``H``, the spikes
    and ``V'`` are computed, ``o`` is offered and, when ``o`` is taken, ``V'`` is written back.
    Latency 1 cycle, throughput 1 row per cycle. The membrane read port is transparent for the
    write port, so a row updated in one cycle and read in the next sees the new value: there is
    no read-after-write hazard at any distance, and no bubble is needed.

    State clear costs nothing: an input with ``first = 1`` (time step 0 of an image) treats the
    stored membrane as 0. With the layer-outer, time-inner loop every membrane of a layer is
    written at step 0 before it is read at step 1, so no clearing sweep is ever needed.

    Parameters
    ----------
    lanes : :class:`int`
        Number of lanes ``L``.
    depth : :class:`int`
        Number of membrane rows (neurons / L); one row is a register, not a memory.
    in_width : :class:`int`
        Width of the signed input current ``X`` (the accumulator width).
    v_width : :class:`int`
        Width of the signed membrane; at least ``in_width`` and ``theta_width``, since
        ``|H| <= max(|V|, |X|)`` and a stored ``V`` is below ``θ``.
    theta_width : :class:`int`
        Width of a signed threshold.
    theta_depth : :class:`int`
        Number of threshold rows (of ``L`` thresholds).
    chunks : :class:`int`
        Threshold rows per row of ``L · chunks`` neurons (a power of two): an input's
        thresholds are row ``trow · chunks + chunk``.
    theta_ahead : :class:`bool`
        Read the threshold row a cycle ahead (``chunks = 1`` only): ``trow_ahead`` gives the
        threshold row of the input taken in the next cycle, the row read is taken into a
        register with the input, and the compare starts from registers only (the ECP5's
        block RAMs' output was the critical path, through the compare into the spike
        memory's write data). The input then has no ``trow`` field. Latency and throughput
        are unchanged.

    Members
    -------
    i : ``In(stream.Signature(LIFUnit.InLayout))``
        ``x`` (``ArrayLayout(signed(in_width), L)``), ``row`` (membrane row), ``trow`` and
        ``chunk`` (threshold row ``trow · chunks + chunk``), ``first`` (treat the
        stored membrane as 0), ``tag`` (16 bits passed through to ``o``).
    o : ``Out(stream.Signature(LIFUnit.OutLayout))``
        ``spikes`` (L bits, bit ``l`` = lane ``l``), ``row``, ``tag``.
    theta_write : ``Out(memory.WritePort.Signature(...))``
        Threshold memory write port; data ``ArrayLayout(signed(theta_width), L)``.
    trow_ahead : ``In(ceil_log2(theta_depth))``
        With ``theta_ahead``: the threshold row of the input taken in the next cycle.
    """

    TAG_WIDTH = 16

    def __init__(self, lanes, depth, in_width, *, v_width=None, theta_width=None,
                 theta_depth=16, chunks=1, theta_ahead=False):
        check_positive("Lane count", lanes)
        check_positive("Depth", depth)
        check_positive("Input width", in_width)
        if theta_width is None:
            theta_width = in_width
        check_positive("Threshold width", theta_width)
        if v_width is None:
            v_width = max(in_width, theta_width)
        check_positive("Membrane width", v_width)
        if v_width < max(in_width, theta_width):
            raise ValueError(f"Membrane width {v_width!r} is narrower than the input or "
                             f"threshold width {max(in_width, theta_width)!r}")
        check_positive("Threshold depth", theta_depth)
        check_positive("Chunk count", chunks)
        if chunks & (chunks - 1):
            raise ValueError(f"Chunk count must be a power of two, not {chunks!r}")
        self._lanes = lanes
        self._depth = depth
        self._theta_depth = theta_depth
        self._v_width = v_width
        if theta_ahead and chunks != 1:
            raise ValueError(f"A threshold row read ahead needs one chunk, not {chunks!r}")
        self._chunks = chunks
        self._theta_ahead = theta_ahead
        trow = max(ceil_log2(theta_depth), 1)
        self.v_shape = data.ArrayLayout(signed(v_width), lanes)
        self.theta_shape = data.ArrayLayout(signed(theta_width), lanes)
        self.in_layout = data.StructLayout({
            "x": data.ArrayLayout(signed(in_width), lanes),
            # Fields of at least one bit (a one-row memory still has an address field).
            "row": max(ceil_log2(depth), 1),
            **({} if theta_ahead else {"trow": trow, "chunk": max(ceil_log2(chunks), 1)}),
            "first": 1,
            "tag": self.TAG_WIDTH,
        })
        self.out_layout = data.StructLayout({
            "spikes": lanes,
            "row": max(ceil_log2(depth), 1),
            "tag": self.TAG_WIDTH,
        })
        super().__init__({
            "i": In(stream.Signature(self.in_layout)),
            "o": Out(stream.Signature(self.out_layout)),
            "theta_write": Out(memory.WritePort.Signature(
                addr_width=ceil_log2(theta_depth), shape=self.theta_shape)),
            **({"trow_ahead": In(trow)} if theta_ahead else {}),
        })

    @property
    def lanes(self):
        return self._lanes

    def elaborate(self, platform):
        m = Module()
        p = self._lanes
        s_valid = Signal()
        s = Signal(self.in_layout)

        v_next = Signal(self.v_shape)
        v_write = Signal()
        if self._depth > 1:
            m.submodules.v_mem = v_mem = memory.Memory(shape=self.v_shape, depth=self._depth,
                                                       init=[])
            v_wr = v_mem.write_port()
            v_rd = v_mem.read_port(transparent_for=(v_wr,))
            m.d.comb += [v_rd.addr.eq(self.i.payload.row), v_rd.en.eq(~s_valid | self.o.ready),
                         v_wr.addr.eq(s.row), v_wr.data.eq(v_next), v_wr.en.eq(v_write)]
            v_row = v_rd.data
        else:
            # One row: a register (its next value a cycle after the write, as the transparent
            # read port gives), and no read multiplexer or spare row.
            v_row = Signal(self.v_shape, name="v")
            with m.If(v_write):
                m.d.sync += v_row.eq(v_next)
        m.submodules.t_mem = t_mem = loader_filled(memory.Memory(shape=self.theta_shape,
                                                                 depth=self._theta_depth,
                                                                 init=[]))
        t_wr = t_mem.write_port()
        t_rd = t_mem.read_port()
        wiring.connect(m, wiring.flipped(self.theta_write), t_wr)
        advance = ~s_valid | self.o.ready
        m.d.comb += self.i.ready.eq(advance)
        with m.If(advance):
            m.d.sync += [s_valid.eq(self.i.valid), s.eq(self.i.payload)]
        if self._theta_ahead:
            # Read every cycle for the next cycle's input; taken with the input.
            theta = Signal(self.theta_shape, name="theta")
            m.d.comb += [t_rd.addr.eq(self.trow_ahead), t_rd.en.eq(1)]
            with m.If(advance):
                m.d.sync += theta.eq(t_rd.data)
        else:
            m.d.comb += [t_rd.addr.eq(Cat(self.i.payload.chunk[:ceil_log2(self._chunks)],
                                          self.i.payload.trow)),
                         t_rd.en.eq(advance)]
            theta = t_rd.data
        for lane in range(p):
            v = Mux(s.first, 0, v_row[lane])
            h = Signal(signed(self._v_width), name=f"h{lane}")
            # The sum needs one extra bit; the shifted result fits v_width again.
            m.d.comb += h.eq((v + s.x[lane]) >> 1)
            fire = h >= theta[lane]
            m.d.comb += [
                self.o.payload.spikes[lane].eq(fire),
                v_next[lane].eq(Mux(fire, 0, h)),
            ]
        m.d.comb += [
            self.o.valid.eq(s_valid),
            self.o.payload.row.eq(s.row),
            self.o.payload.tag.eq(s.tag),
            v_write.eq(s_valid & self.o.ready),
        ]
        return m
