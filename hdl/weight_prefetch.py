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

Two events per command (``events = 2``): a request names two rows, and the ring reads both in
one cycle on a true dual-port block RAM's two ports (the ECP5's ``DP16KD``). The second read
shares its port with the fill's row writes: a fetched row waits in a row register until a
cycle without a two-row request, and the next row is taken from the source only once that
register is free. A source row takes several bus words (four 16-bit words at 8 lanes of 8-bit
weights), so the writes fit between the reads, and the engine never waits on them: where every
cycle reads two rows, the fill falls behind and the engine waits for rows not yet fetched; a
request that waited a cycle gives the port to the write (it could not be served in that cycle
anyway).
"""

from types import SimpleNamespace

from amaranth.hdl import Module, Mux, ResetInserter, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In
from amaranth.utils import ceil_log2

from .params import check_positive
from .ram import ring_window
from .weights import ReadPortWeights, weight_source_signature

__all__ = ["WeightPrefetch"]


class WeightPrefetch(wiring.Component):
    """A weight source (:mod:`~.weights`) that serves the engine from an on-chip window of the
    weight stream, fetched in order from another weight source (``src``).

    **Cycle contract.** Towards the engine as :class:`~.weights.ReadPortWeights`: a request
    for a row in the window (both rows, with ``events = 2``) is answered in the next cycle,
    one per cycle; a request for a row not fetched yet waits until it is. Towards the source:
    one row request per cycle in row order while the window has room for it (rows in flight
    included) and fewer than ``in_flight`` rows are outstanding; every row the source answers
    is taken at once (with ``events = 2``: once the row register is free, at most every other
    cycle).

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
    events : int
        Rows per engine request, 1 or 2 (:func:`~.pe_array.weight_request_shape`).

    Members
    -------
    req, rsp :
        The engine's side, as :class:`~.weights.ReadPortWeights`.
    src : ``In(weight_source_signature(shape, addr_width))``
        The source's side: row requests out (``src.req``), rows in (``src.rsp``; always ready
        with ``events = 1``).
    written : ``In(memory.WritePort.Signature(...))``
        The loader's row writes to the source (watched only, a cycle late: a write restarts
        the fetch in the next cycle, and the stream's length is the highest row written + 1).
    busy : ``In(1)``
        The engine works on an image (its falling edge ends the image's requests).
    """

    def __init__(self, shape, depth, *, window, tile_rows, in_flight=4, events=1):
        check_positive("Weight depth", depth)
        if events not in (1, 2):
            raise ValueError(f"Events per request must be 1 or 2, not {events!r}")
        check_positive("Tile rows", tile_rows)
        check_positive("Rows in flight", in_flight)
        if not isinstance(window, int) or window <= 0 or window & (window - 1):
            raise ValueError(f"Window must be a positive power of two, not {window!r}")
        if window < tile_rows:
            raise ValueError(f"A window of {window} rows cannot hold a tile of {tile_rows}")
        self._shape, self._depth = shape, depth
        self._window, self._tile, self._in_flight = window, tile_rows, in_flight
        self._events = events
        aw = ceil_log2(depth)
        super().__init__({
            **weight_source_signature(shape, aw, events).members,
            "src": In(weight_source_signature(shape, aw)),
            "written": In(memory.WritePort.Signature(addr_width=aw, shape=shape)),
            "busy": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        depth, c, big_l = self._depth, self._window, self._tile
        two_rows = self._events == 2
        cb = ceil_log2(c)
        m.submodules.ring = ring = ring_window(memory.Memory(shape=self._shape, depth=c,
                                                             init=[]))
        rd, wr = ring.read_port(), ring.write_port()
        rd1 = ring.read_port() if two_rows else None    # shares the write's port

        rows = Signal(range(depth + 1), name="stream_rows")     # the stream's length N
        fetch_row = Signal(range(max(depth, 2)), name="fetch_row")   # next row to request
        # Rows of this image (and on) in the ring: ``ahead_kept`` and the row put in the last
        # cycle (``ahead_put``), added a cycle later, so that ``put`` (from the engine's request
        # through the window test) only goes into a flip-flop (through the adders into the
        # count it was the ECP5 critical path with the weights in SDRAM).
        kept = Signal(range(depth + c + 1), name="ahead_kept")
        last_put = Signal(name="ahead_put")
        ahead = Signal(range(depth + c + 1))
        m.d.comb += ahead.eq(kept + last_put)
        low = Signal(range(depth + 1))              # rows of this image below it are free
        pending = Signal(range(self._in_flight + 1))    # requests the source has not answered
        drop = Signal(range(self._in_flight + 1))       # of those, rows to throw away
        base = Signal(cb, name="image_slot")        # the ring slot of this image's row 0
        slot = Signal(cb, name="fill_slot")         # the ring slot of the next fetched row
        held = Signal() if two_rows else 0                  # a kept row waits in ``row``
        was_busy = Signal()
        m.d.sync += was_busy.eq(self.busy)
        image_end = was_busy & ~self.busy

        # -- engine side: ReadPortWeights over the ring, for rows already fetched ---------------
        # At an image's end nothing waits for a row (an engine reset in the middle of a
        # request, too): the reader's row register is cleared.
        m.submodules.reader = reader = ResetInserter(image_end)(
            ReadPortWeights(self._shape, cb, events=self._events))
        r = self.req.payload.addr if two_rows else self.req.payload

        def fetched(row):                   # ``row < ahead``, from the registers, no adder
            return (row < kept) | (last_put & (row == kept))

        here = fetched(r)
        if two_rows:
            r1 = self.req.payload.addr1
            here &= ~self.req.payload.two | fetched(r1)
            # The fill writes ahead of a two-row request that waited in the last cycle (below);
            # such a request cannot be served in this cycle anyway, as ``ahead`` moves only by
            # a put, and a put frees the row register for the next cycle. Refusing it here
            # makes that plain to the port without a path through ``here``.
            asks_two = self.req.valid & self.req.payload.two
            waited = Signal(name="two_waited")
            m.d.sync += waited.eq(asks_two & ~here)
            here &= ~(waited & held & self.req.payload.two)
            m.d.comb += [reader.req.payload.addr.eq(base + r),
                         reader.req.payload.addr1.eq(base + r1),
                         reader.req.payload.two.eq(self.req.payload.two)]
        else:
            m.d.comb += reader.req.payload.eq(base + r)
        m.d.comb += [
            reader.req.valid.eq(self.req.valid & here),
            self.req.ready.eq(reader.req.ready & here),
            rd.addr.eq(reader.port.addr), rd.en.eq(reader.port.en),
            reader.port.data.eq(rd.data),
        ]
        wiring.connect(m, reader.rsp, wiring.flipped(self.rsp))
        # The ring's ports, and whether this cycle's reads are used (a request taken), for
        # testbenches that check that no used read meets the write (hdl.ram.ring_window).
        used = Signal()
        m.d.comb += used.eq(reader.req.valid & reader.req.ready)
        self.ring_ports = SimpleNamespace(read=rd, read1=rd1, write=wr,
                                          used=used)
        # Rows below r − L + 1 are free once the engine asks for r (it asks in order, and has
        # taken the rows of every earlier request), even before r is fetched. With two rows,
        # r is the higher: both lie in one tile, which starts at or after it − L + 1 (from the
        # lower one, the higher could lie beyond the window, never fetched).
        if two_rows:
            r = Mux(self.req.payload.two & (r1 > r), r1, r)
        with m.If(self.req.valid & (r >= big_l - 1) & (r - (big_l - 1) > low)):
            m.d.sync += low.eq(r - (big_l - 1))

        # -- source side: rows in order into the ring ------------------------------------------
        # A row request, once offered, stays on ``src.req`` until taken (``offer``, ``asked``),
        # also across a restart: it is then ``stale`` and its row is dropped.
        # The loader's writes are watched a cycle late, from registers (from the loader's
        # state through its write enable into the window count was an ECP5 critical path): a
        # row requested in the write's cycle is in flight at the restart, and dropped.
        w_en, w_addr = Signal(), Signal.like(self.written.addr)
        m.d.sync += [w_en.eq(self.written.en), w_addr.eq(self.written.addr)]
        # Whether the fetch is behind the image (``ahead < rows``), from registers: the
        # compare of the previous cycle's ``ahead`` with and without the row it put then (from
        # the stream's length through the compare, the restart and ``put`` into ``ahead`` was
        # the ECP5 critical path with the weights in SDRAM). After a restart ``ahead`` is 0.
        # ``rows`` moves only with a write, which restarts; ``image_end`` never comes in two
        # cycles in a row, so ``ahead`` moved by ``put`` alone since the compare.
        was_lt, was_lt1, was_put, was_restart = Signal(), Signal(), Signal(), Signal()
        behind = Signal()
        m.d.comb += behind.eq(Mux(was_restart, rows != 0, Mux(was_put, was_lt1, was_lt)))
        # For testbenches: ``behind`` must equal ``ahead < rows`` where an image may end.
        self.window_state = SimpleNamespace(behind=behind, ahead=ahead, rows=rows,
                                            image_end=image_end)
        restart = w_en | (image_end & behind)
        offer = Signal()
        asked = Signal.like(fetch_row)
        stale = Signal()
        m.d.comb += [self.src.req.valid.eq(offer), self.src.req.payload.eq(asked)]
        sent = offer & self.src.req.ready
        got = self.src.rsp.valid & ~held if two_rows else self.src.rsp.valid   # answered, taken
        keep = got & (drop == 0) & ~restart                 # ... and kept
        put = Signal()                                      # a row written into the ring
        if two_rows:
            # The fill's writes share the second read's port: a kept row waits in a register
            # for a cycle without a two-row request, and the next is taken once it is written.
            # A two-row request offered takes the port, unless it waited in the last cycle:
            # the write then goes first (the request is refused, above). Whether the request
            # is served (through the window test) does not decide the write: from the window
            # count through the test and ``put`` into the port's address it was the ECP5
            # critical path with the weights in SDRAM. A request that starts to wait while a
            # row is held costs the fill a cycle.
            row = Signal.like(self.src.rsp.payload)
            shared = Mux(put, slot, reader.port1.addr)
            # A write only while the reader reads (its row register moves), so that a row it
            # holds is never on the port being written.
            m.d.comb += [self.src.rsp.ready.eq(~held),
                         put.eq(held & reader.port.en & (waited | ~asks_two) & ~restart),
                         rd1.addr.eq(shared), rd1.en.eq(reader.port1.en),
                         reader.port1.data.eq(rd1.data),
                         wr.addr.eq(shared), wr.data.eq(row), wr.en.eq(put)]
            with m.If(restart):
                m.d.sync += held.eq(0)
            with m.Elif(keep):
                m.d.sync += [held.eq(1), row.eq(self.src.rsp.payload)]
            with m.Elif(put):
                m.d.sync += held.eq(0)
        else:
            m.d.comb += [self.src.rsp.ready.eq(1), put.eq(keep),
                         wr.addr.eq(slot), wr.data.eq(self.src.rsp.payload), wr.en.eq(put)]
        # Requests taken and not answered (``got`` aside), where the offer is free to move on
        # (``~offer | sent``: ``sent`` is ``offer`` there), from registers: the source's
        # ``ready`` only selects (through this count's adders it was the ECP5 critical path).
        in_flight = pending + offer
        with m.If(sent & ~got):
            m.d.sync += pending.eq(pending + 1)
        with m.Elif(got & ~sent):
            m.d.sync += pending.eq(pending - 1)
        with m.If(put):
            m.d.sync += slot.eq(slot + 1)
        m.d.sync += [was_lt.eq(ahead < rows), was_lt1.eq(ahead + 1 < rows), was_put.eq(put),
                     was_restart.eq(restart)]
        drop_next = drop - (got & (drop != 0))

        with m.If(restart):
            # The window empties; the rows in flight are dropped as they arrive.
            m.d.sync += [fetch_row.eq(0), kept.eq(0), low.eq(0), base.eq(slot)]
            with m.If(offer & ~self.src.req.ready):
                m.d.sync += [stale.eq(1), drop.eq(pending - got)]
            with m.Else():
                m.d.sync += [offer.eq(0), stale.eq(0), drop.eq(in_flight - got)]
        with m.Else():
            m.d.sync += drop.eq(drop_next + (sent & stale))
            with m.If(sent):
                m.d.sync += stale.eq(0)
            with m.If(~offer | sent):
                # The next offer: while the window has room for it, what is in flight and the
                # row waiting to be written.
                room = ((rows != 0) & (in_flight < self._in_flight)
                        & (kept + (last_put + in_flight + held) < low + c))
                m.d.sync += [offer.eq(room), asked.eq(fetch_row)]
                with m.If(room):
                    m.d.sync += fetch_row.eq(Mux(fetch_row == rows - 1, 0, fetch_row + 1))
            with m.If(image_end):
                # The fetch is into the next image already: its rows stay.
                m.d.sync += [kept.eq(ahead - rows), low.eq(0), base.eq(base + rows)]
            with m.Else():
                m.d.sync += kept.eq(ahead)
        m.d.sync += last_put.eq(put)            # 0 at a restart
        # A load writes rows 0, 1, … in order: row 0 starts a new stream length.
        with m.If(w_en & ((w_addr == 0) | (w_addr >= rows))):
            m.d.sync += rows.eq(w_addr + 1)
        return m
