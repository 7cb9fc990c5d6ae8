"""The layer controller's states per operation that runs rows of its own.

Each function adds one operation's states to the controller's FSM
(:class:`~.controller.LayerController`, which calls them inside its ``with m.FSM()``, in the
order the states are encoded): the pixel layer's bit-plane gathers, the convolution's pipelined
rows, ``STREAM_LIF``'s rows and the head's token sum. The controller keeps what every operation
shares (the descriptor load, the row nest's start and advance, the rows to the LIF and the
stages it only starts and waits for). Each function's ``c`` is the controller (its ports) and
``s`` its internal signals (:class:`Internals`); the states' cycle costs are the cycle model's
(:mod:`sdtforge.sim.cycles`).
"""

import contextlib
import dataclasses

from amaranth.hdl import Cat, Mux, Signal

from .pe_array import PEOp

__all__ = ["Internals", "pixel_states", "conv_states", "stream_lif_states", "head_states"]


@dataclasses.dataclass(frozen=True)
class Internals:
    """The controller's signals that the states of several operations share.

    ``f``: the descriptor's shared fields; ``nest``: the row nest (:class:`~.loops.LoopNest`);
    ``wg``: the group's weight base; ``bit``: the pixel layer's bit-plane; ``hy``, ``hx``: the
    head's token; ``ev``: the event encoder's payload, ``ev_row`` its weight row (``ev_row1``
    the second event's, with two events per command; ``None`` otherwise); ``token_end``: the
    head's last token (``y``, ``x``: registers of ``in_h − 1``, ``in_w − 1``);
    ``row_pending``: a ``CONV`` row latched whose sums are not taken yet; ``more_planes``,
    ``start_next``, ``gathering``: a plane follows the one drained, start its fetch, the pixel
    layer gathers; ``serial``: the write-back is lane-serial, ``plane_first``, ``tok_first``
    and ``again`` then its row flags (``None`` otherwise); ``lv``: the
    :class:`~.lane_value.LaneValue` (``None`` where the write-back folds); ``ahead``: with a
    write-back of one cycle per row, ``STREAM_LIF``'s read-ahead nest, a row ahead of ``nest``
    while the rows run (``None`` otherwise); ``head_reading``: with a stream read of several
    cycles, ``HEAD_SUM`` has tokens left to read (``None`` otherwise).
    """

    cfg: object
    f: object
    nest: object
    wg: object
    bit: object
    hy: object
    hx: object
    ev: object
    ev_row: object
    ev_row1: object
    token_end: dict
    row_pending: object
    more_planes: object
    start_next: object
    gathering: object
    serial: bool
    plane_first: object = None
    tok_first: object = None
    again: object = None
    lv: object = None
    ahead: object = None
    head_reading: object = None


def _event_rows(cmd, s):
    """An ``ACC`` command's rows: the event's, and the second event's where there are two."""
    if s.ev_row1 is None:
        return [cmd.addr.eq(s.ev_row)]
    return [cmd.addr.eq(s.ev_row), cmd.addr1.eq(s.ev_row1), cmd.two.eq(s.ev.two)]


def pixel_states(m, c, s):
    """``PIXEL``'s bit-plane gathers: ``BIAS``/``CLEAR``, the events, ``DRAIN``, per plane.

    A plane's ``DRAIN`` and the next plane's ``CLEAR``/``BIAS`` are sent while the fetch
    refills (it has read all of the plane's words when the plane's last event leaves); the last
    plane loads the bias (unless the write-back adds it: ``AccelConfig.writeback_bias``).
    """
    cmd, g = c.cmd.payload, s.nest.c["g"]
    plane_cmd = (PEOp.CLEAR if s.cfg.writeback_bias
                 else Mux(s.bit != 0, PEOp.CLEAR, PEOp.BIAS))
    with m.State("GATHER_CMD"):
        m.d.comb += [c.cmd.valid.eq(1), cmd.op.eq(plane_cmd), cmd.addr.eq(s.f.prow + g)]
        with m.If(c.cmd.ready):
            m.d.comb += c.fetch_start.eq(1)
            m.d.sync += s.gathering.eq(1)
            m.next = "GATHER_RUN"
    with m.State("GATHER_RUN"):
        m.d.comb += [c.cmd.valid.eq(c.events.valid & ~s.ev.none),
                     cmd.op.eq(PEOp.ACC), *_event_rows(cmd, s),
                     c.events.ready.eq(c.cmd.ready | s.ev.none)]
        with m.If(c.events.valid & c.events.ready & s.ev.last):
            m.d.sync += [s.more_planes.eq(s.bit != 0), s.start_next.eq(s.bit != 0)]
            m.next = "GATHER_DRAIN"
            with m.If(s.bit != 0):
                m.d.sync += s.bit.eq(s.bit - 1)
    with m.State("GATHER_DRAIN"):
        m.d.comb += [c.cmd.valid.eq(1), cmd.op.eq(PEOp.DRAIN)]
        if s.serial:
            # Whether the plane is the first goes with its sums, as the DRAIN's tag
            # (PEArray.o).
            m.d.comb += cmd.addr.eq(s.plane_first)
        with m.If(c.cmd.ready):
            if s.serial:
                m.d.sync += s.plane_first.eq(0)
            with m.If(s.more_planes):
                m.next = "GATHER_NEXT"
            with m.Else():
                m.next = "GATHER_WAIT"
    with m.State("GATHER_NEXT"):
        m.d.comb += [c.cmd.valid.eq(1), cmd.op.eq(plane_cmd), cmd.addr.eq(s.f.prow + g)]
        with m.If(c.cmd.ready):
            m.next = "GATHER_RUN"
    with m.State("GATHER_WAIT"):
        if s.serial:
            # The planes are folded in the write-back: their value to the LIF once the last
            # one has started there. Each plane starts when its sums come (a plane gathers
            # for at least 13 cycles, a fold takes at most 8: MAX_WRITEBACK_CYCLES), so the
            # first start after the last DRAIN is its.
            with m.If(c.wb.taken):
                m.d.sync += s.again.eq(1)
                m.next = "OUT_LIF"
        else:
            # The last plane's sums, taken (and their Horner step done) in this cycle.
            with m.If(c.sums.valid):
                m.d.sync += s.gathering.eq(0)
                m.next = "OUT_LIF"


def conv_states(m, c, s):
    """``CONV``'s pipelined rows (the controller's docstring).

    The counters advance a cycle after the last event entered the command queue (advancing them
    from the event's own handshake was the iCE40 critical path); ``row_pending``: a row whose
    last event entered the queue and whose sums are not taken.
    """
    cmd, ev, f, nest = c.cmd.payload, s.ev, s.f, s.nest
    with m.State("CONV_START"):
        m.d.comb += [c.cmd.valid.eq(1),
                     cmd.op.eq(PEOp.CLEAR if s.cfg.writeback_bias else PEOp.BIAS),
                     cmd.addr.eq(f.prow + nest.c["g"]), c.fetch_start.eq(1)]
        m.next = "CONV_RUN"
    with m.State("CONV_RUN"):
        block = ev.last & s.row_pending
        m.d.comb += [c.cmd.valid.eq(c.events.valid & ~block),
                     cmd.op.eq(Mux(ev.none, PEOp.DRAIN, PEOp.ACC)),
                     *_event_rows(cmd, s), cmd.last.eq(ev.last),
                     # The next row's bias row (unless the write-back adds the biases).
                     *([] if s.cfg.writeback_bias else
                       [cmd.bias.eq(f.prow + nest.next["g"])]),
                     c.events.ready.eq(c.cmd.ready & ~block)]
        with m.If(c.events.valid & c.events.ready & ev.last):
            # The next event (the next row's) may enter the queue in the next cycle: the
            # group's weight base moves on now, the other counters a cycle later.
            m.d.sync += s.row_pending.eq(1)
            with m.If(nest.wrap_y):
                m.d.sync += s.wg.eq(s.wg + f.w_gstride)
        with m.If(c.cmd_taken_last):
            m.d.comb += c.wb.latch.eq(1)
            nest.advance()
            with m.If(nest.done):
                m.next = "CONV_END"
    with m.State("CONV_END"):
        with m.If(c.wb.done):
            m.d.comb += c.program.step.eq(1)
            m.next = "FETCH"


def stream_lif_states(m, c, s):
    """``STREAM_LIF``: one row (group, position, step) per write-back row.

    ``LIF_READ`` reads the row; ``LIF_RUN`` feeds it to the LIF. With ``c = 1`` the stage takes
    a row every cycle and the next row is read as it does (``read_next``, at the read-ahead
    nest ``ahead``, which ``LIF_READ`` moves a row ahead of ``nest``); with ``c > 1`` the
    read port holds the row (``read_hold``) until it is taken, and the next row is read in
    ``LIF_READ`` again, so the read's address and enable follow registers, not the
    write-back's ready (a row is offered two cycles after the take before it, within the
    ``c >= 2`` the stage spends on a row); the last row's last chunk is worked on in
    ``LIF_END``.
    """
    nest, serial = s.nest, s.serial
    # With a stream read of L cycles (``stream_latency``; one write-back cycle per row) the
    # first L rows are read in L cycles of LIF_READ, at ``ahead``, L rows ahead of ``nest``
    # from then on (``ahead`` equals ``nest`` at DECODE, so the first read is the nest's row).
    primes = ["LIF_READ", *(f"LIF_READ{k}" for k in range(1, s.cfg.stream_latency))]
    for state, then in zip(primes, [*primes[1:], "LIF_RUN"], strict=True):
        with m.State(state):
            if not serial:
                s.ahead.advance()
                if len(primes) > 1:
                    m.d.comb += c.read_next.eq(1)
            m.next = then
    with m.State("LIF_RUN"):
        m.d.comb += c.lif.valid.eq(1)
        if serial:
            m.d.comb += c.read_hold.eq(1)
        with m.If(c.lif.ready if serial else 1):
            if serial:
                m.next = "LIF_READ"
            else:
                m.d.comb += c.read_next.eq(1)
                s.ahead.advance()
            nest.advance()
            with m.If(nest.done):
                if not serial:
                    # FETCH keeps the descriptor for a cycle: the last row's spikes are
                    # written.
                    m.d.comb += c.program.step.eq(1)
                    m.next = "FETCH"
                else:
                    m.next = "LIF_END"
    if serial:
        with m.State("LIF_END"):
            with m.If(c.wb.done):
                m.d.comb += c.program.step.eq(1)
                m.next = "FETCH"


def head_states(m, c, s):
    """``HEAD_SUM``: the stream's token sum, one token per two cycles (``X_READ``, ``X_USE``).

    Lane-serial: each token's row to the write-back, which sums it in its chunks, the read port
    holding the row until it is taken; then the sum goes to the LIF as an ``again`` row.

    With a stream read of ``L > 1`` cycles (``stream_latency``) the tokens are read one per
    cycle and summed as their rows arrive, ``L`` cycles later: ``N + L`` cycles in ``X_READ``.
    """
    if s.cfg.stream_latency > 1:
        _head_pipelined(m, c, s)
        return
    with m.State("X_READ"):
        m.next = "X_USE"
    with m.State("X_USE"):
        def next_token():
            m.next = "X_READ"
            with _next_token(m, s):
                if s.serial:
                    m.d.sync += s.again.eq(1)
                m.next = "OUT_LIF"
        if s.serial:
            m.d.comb += [c.lif.valid.eq(1), c.read_hold.eq(1)]
            with m.If(c.lif.ready):
                m.d.sync += s.tok_first.eq(0)
                next_token()
        else:
            m.d.comb += s.lv.add.eq(1)
            next_token()


@contextlib.contextmanager
def _next_token(m, s):
    """``sync``: move the head's token (``hy``, ``hx``) to the next one, in raster order; the
    statements in the context run at the last token."""
    end, hy, hx = s.token_end, s.hy, s.hx
    with m.If(hx == end["x"]):
        m.d.sync += [hx.eq(0), hy.eq(hy + 1)]
        with m.If(hy == end["y"]):
            yield
    with m.Else():
        m.d.sync += hx.eq(hx + 1)


def _head_pipelined(m, c, s):
    """:func:`head_states` over a stream read of ``L`` cycles: a token read per cycle
    (``reading``, set at ``POS``), each added ``L`` cycles later (``arriving``: the reads in
    flight); ``OUT_LIF`` after the last token's add."""
    latency = s.cfg.stream_latency
    arriving = Signal(latency, name="head_arriving")
    reading = s.head_reading
    with m.State("X_READ"):
        m.d.sync += arriving.eq(Cat(reading, arriving[:-1]))
        m.d.comb += s.lv.add.eq(arriving[-1])
        with m.If(reading), _next_token(m, s):
            m.d.sync += reading.eq(0)
        with m.If(~reading & (arriving == 1 << (latency - 1))):
            m.next = "OUT_LIF"
