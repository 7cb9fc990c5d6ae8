"""Tile prefetch: a window of the weight stream on chip, filled ahead of the engine.

The compiler lays the weight rows out in the order the engine consumes them: layer by layer,
and within a layer one output group's rows (a *tile*, :mod:`.weight_tiles`) after another.
Every request of a group lies inside its tile, and a later group's tile lies further on. So the
weight memory is read as one sequential stream per image, and a window of ``C`` rows on chip
is enough to serve every request if

- rows are fetched from the (slow, bursty) source in address order, ahead of the engine, into
  a ring of ``C`` rows;
- a row is dropped from the window only once no later request can ask for it: after a request
  for row ``r``, rows below ``r − L + 1`` are free, ``L`` being the largest tile (the request's
  tile starts at or after that row, and no request goes back to an earlier tile).

Each weight then crosses the source's bus once per image, and the engine waits only while the
fetch is behind (bandwidth), not per request (latency). With ``C ≥ 2·L`` the window holds the
tile being computed and at least ``C − L`` rows after it: the next tile is fetched while the
current one computes (double buffering), without the engine saying where a tile ends.

The stream repeats per image: after the last row (``rows``: the highest row written + 1 since
row 0 was last written) the fetch goes on with row 0 of the next image, and the image boundary
(``busy`` falling: every request of the image has been served) moves the window to the next
image's rows. A fetch that is still behind the image (tiles of the image nobody asked for)
restarts at row 0, as does any row write (model loading); rows in flight from the source then
are dropped. (So each weight crosses the bus once per image while the window keeps up; a
restart fetches again the rows it dropped, and a load re-reads the stream's head between its
row writes.)
"""

from amaranth.hdl import Module, Mux, ResetInserter, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In
from amaranth.utils import ceil_log2

from .params import check_positive
from .weights import ReadPortWeights, weight_source_signature

__all__ = ["WeightPrefetch"]


class WeightPrefetch(wiring.Component):
    """A weight source (:mod:`~.weights`) that serves the engine from an on-chip window of the
    weight stream, fetched in order from another weight source (``src``).

    **Cycle contract.** Towards the engine as :class:`~.weights.ReadPortWeights`: a request
    for a row in the window is answered in the next cycle, one per cycle; a request for a row
    not fetched yet waits until it is. Towards the source: one row request per cycle in row
    order while the window has room for it (rows in flight included) and fewer than
    ``in_flight`` rows are outstanding; every row the source answers is taken at once.

    Parameters
    ----------
    shape : ShapeLike
        One weight row.
    depth : int
        Rows the source holds (the width of row addresses).
    window : int
        Rows of the on-chip ring ``C`` (a power of two, at least ``tile_rows``).
    tile_rows : int
        The largest tile ``L`` of any program run on it (``w_gstride``,
        :func:`~.weight_tiles.max_tile_rows`). A program with a larger tile would be served
        wrong rows: a configuration's ``weight_tile_rows`` makes ``compile_model`` refuse it.
    in_flight : int
        Row requests outstanding at the source at most.

    Members
    -------
    req, rsp :
        The engine's side, as :class:`~.weights.ReadPortWeights`.
    src : ``In(weight_source_signature(shape, addr_width))``
        The source's side: row requests out (``src.req``), rows in (``src.rsp``, always ready).
    written : ``In(memory.WritePort.Signature(...))``
        The loader's row writes to the source (watched only: a write restarts the fetch, and
        the stream's length is the highest row written + 1).
    busy : ``In(1)``
        The engine works on an image (its falling edge ends the image's requests).
    """

    def __init__(self, shape, depth, *, window, tile_rows, in_flight=4):
        check_positive("Weight depth", depth)
        check_positive("Tile rows", tile_rows)
        check_positive("Rows in flight", in_flight)
        if not isinstance(window, int) or window <= 0 or window & (window - 1):
            raise ValueError(f"Window must be a positive power of two, not {window!r}")
        if window < tile_rows:
            raise ValueError(f"A window of {window} rows cannot hold a tile of {tile_rows}")
        self._shape, self._depth = shape, depth
        self._window, self._tile, self._in_flight = window, tile_rows, in_flight
        aw = ceil_log2(depth)
        super().__init__({
            **weight_source_signature(shape, aw).members,
            "src": In(weight_source_signature(shape, aw)),
            "written": In(memory.WritePort.Signature(addr_width=aw, shape=shape)),
            "busy": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        depth, c, big_l = self._depth, self._window, self._tile
        cb = ceil_log2(c)
        m.submodules.ring = ring = memory.Memory(shape=self._shape, depth=c, init=[])
        rd, wr = ring.read_port(), ring.write_port()

        rows = Signal(range(depth + 1), name="stream_rows")     # the stream's length N
        fetch_row = Signal(range(max(depth, 2)), name="fetch_row")   # next row to request
        ahead = Signal(range(depth + c + 1))        # rows of this image (and on) fetched
        low = Signal(range(depth + 1))              # rows of this image below it are free
        pending = Signal(range(self._in_flight + 1))    # requests the source has not answered
        drop = Signal(range(self._in_flight + 1))       # of those, rows to throw away
        base = Signal(cb, name="image_slot")        # the ring slot of this image's row 0
        slot = Signal(cb, name="fill_slot")         # the ring slot of the next fetched row
        was_busy = Signal()
        m.d.sync += was_busy.eq(self.busy)
        image_end = was_busy & ~self.busy

        # -- engine side: ReadPortWeights over the ring, for rows already fetched ---------------
        # At an image's end nothing waits for a row (an engine reset in the middle of a
        # request, too): the reader's row register is cleared.
        m.submodules.reader = reader = ResetInserter(image_end)(ReadPortWeights(self._shape, cb))
        r = self.req.payload
        here = r < ahead
        m.d.comb += [
            reader.req.valid.eq(self.req.valid & here),
            reader.req.payload.eq(base + r),
            self.req.ready.eq(reader.req.ready & here),
            rd.addr.eq(reader.port.addr), rd.en.eq(reader.port.en),
            reader.port.data.eq(rd.data),
        ]
        wiring.connect(m, reader.rsp, wiring.flipped(self.rsp))
        # Rows below r − L + 1 are free once the engine asks for r (it asks in order, and has
        # taken the rows of every earlier request), even before r is fetched.
        with m.If(self.req.valid & (r >= big_l - 1) & (r - (big_l - 1) > low)):
            m.d.sync += low.eq(r - (big_l - 1))

        # -- source side: rows in order into the ring ------------------------------------------
        # A row request, once offered, stays on ``src.req`` until taken (``offer``, ``asked``),
        # also across a restart: it is then ``stale`` and its row is dropped.
        restart = self.written.en | (image_end & (ahead < rows))
        offer = Signal()
        asked = Signal.like(fetch_row)
        stale = Signal()
        m.d.comb += [self.src.req.valid.eq(offer), self.src.req.payload.eq(asked),
                     self.src.rsp.ready.eq(1)]
        sent = offer & self.src.req.ready
        got = self.src.rsp.valid
        keep = got & (drop == 0) & ~restart
        m.d.comb += [wr.addr.eq(slot), wr.data.eq(self.src.rsp.payload), wr.en.eq(keep)]
        in_flight = pending + sent          # requests taken and not answered, got aside
        m.d.sync += pending.eq(in_flight - got)
        with m.If(keep):
            m.d.sync += slot.eq(slot + 1)
        drop_next = drop - (got & (drop != 0))

        with m.If(restart):
            # The window empties; the rows in flight are dropped as they arrive.
            m.d.sync += [fetch_row.eq(0), ahead.eq(0), low.eq(0), base.eq(slot)]
            with m.If(offer & ~self.src.req.ready):
                m.d.sync += [stale.eq(1), drop.eq(pending - got)]
            with m.Else():
                m.d.sync += [offer.eq(0), stale.eq(0), drop.eq(in_flight - got)]
        with m.Else():
            m.d.sync += drop.eq(drop_next + (sent & stale))
            with m.If(sent):
                m.d.sync += stale.eq(0)
            with m.If(~offer | sent):
                # The next offer: while the window has room for it and what is in flight.
                room = ((rows != 0) & (in_flight < self._in_flight)
                        & (ahead + in_flight < low + c))
                m.d.sync += [offer.eq(room), asked.eq(fetch_row)]
                with m.If(room):
                    m.d.sync += fetch_row.eq(Mux(fetch_row == rows - 1, 0, fetch_row + 1))
            with m.If(image_end):
                # The fetch is into the next image already: its rows stay.
                m.d.sync += [ahead.eq(ahead + keep - rows), low.eq(0), base.eq(base + rows)]
            with m.Else():
                m.d.sync += ahead.eq(ahead + keep)
        # A load writes rows 0, 1, … in order: row 0 starts a new stream length.
        with m.If(self.written.en & ((self.written.addr == 0) | (self.written.addr >= rows))):
            m.d.sync += rows.eq(self.written.addr + 1)
        return m
