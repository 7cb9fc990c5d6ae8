"""The layer controller: the engine's sequence of layers and of rows within a layer."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .accel_isa import Op, address_bits, descriptor_layout, shared_fields
from .lane_value import LaneValue
from .layer_states import Internals, conv_states, head_states, pixel_states, stream_lif_states
from .loops import LoopNest
from .receiver import PixelReceiver, pixel_write_layout
from .result import RESULT_WORD_BITS

__all__ = ["LayerController"]

#: A stage the controller starts and waits for (pool, SDSA, result emitter).
STAGE = wiring.Signature({"start": Out(1), "done": In(1)})


class LayerController(wiring.Component):
    """Runs the compiled program: one descriptor after another, each layer's rows in order.

    For each image: receive the pixels into the pixel memory (descriptor 0, ``PIXEL``, gives
    their layout, loaded in ``FETCH0``; ``BOUNDS`` gives the receiver a cycle to take its counts'
    last values into registers; with ``per_step``, ``steps`` frames of event counts one after
    another), then
    run the descriptors to ``END``. Per operation (``docs/accelerator.md`` §6 tells the whole
    story; the states of the operations that run rows of their own are in
    :mod:`.layer_states`):

    - ``CONV``: pipelined rows ``(g, y, x, t)``: the group's ``BIAS``, the fetch started, the
      encoder's events as ``ACC`` commands of row ``w_base + g·w_gstride + tap·cin + channel``
      (the row's last flagged ``last`` with the next row's bias row); the nest advances and
      the row is latched into the write-back (``wb.latch``) when the PE array takes the last
      one (``cmd_taken_last``); a row's last event waits for ``row_free`` of the row before.
    - ``PIXEL``: per row, the bit-plane gathers (``BIAS``/``CLEAR``, events, ``DRAIN``; each
      plane's fetch a cycle after the plane before ends; at the first step only, or at every
      step from the sample's top plane down with ``per_step``), their ``sums`` folded by
      Horner's rule (:class:`~.lane_value.LaneValue`), the value to the LIF (``lif``), then a
      wait for its spikes (``wb.written``). With a lane-serial write-back the planes' sums go
      to the write-back, which folds them (the ``DRAIN``'s tag: the plane is the first), and
      the value is offered as an ``again`` row (at every step; no gather after the first).
    - ``HEAD_SUM``: per row, the token sum of the stream rows (``stream_row`` at ``token``,
      one per two cycles) to the LIF; lane-serial: each token's row to the write-back
      (``first`` flagged, held on the read port until taken), then an ``again`` row.
      ``STREAM_LIF``: a stream row per row to the LIF, the stream memory read a row ahead
      (``read_next`` at ``row_next``; lane-serial: read after the take, held until the next
      take).
    - ``POOL_OR``, ``SDSA``: start the stage per row / per layer and wait for it; ``END``:
      stop the cycle counter and start the result emitter.

    **Cycle contract.** A descriptor costs its load (``n + 1`` cycles,
    :class:`~.program.ProgramSequencer`) and ``DECODE``; a row of the ``(g, y, x, t)`` nest
    costs ``POS`` and ``NEXT`` plus its operation's states. The costs per operation are the
    cycle model's (:mod:`sdtforge.sim.cycles`: ``decode_cycles``, ``_LOOP``, ``_GATHER``,
    ``_PLANE``, ``_GATHER_END``, ``_OUT`` and one rule per layer kind), which the accelerator
    tests compare with the RTL's count on every image. The cycle counter runs from the cycle
    after the receiver's ``done`` (two after the last pixel) until ``END`` is decoded.

    **What the engine guarantees it** (and the controller does not wait for): the command
    queue is empty when a ``CONV`` layer starts, so ``CONV_START`` offers its ``BIAS`` command
    for one cycle without looking at ``cmd.ready``; with one-cycle write-back rows
    (``writeback_cycles == 1``) the write-back takes a LIF row every cycle, so ``STREAM_LIF``
    does not look at ``lif.ready``. Waiting there would cost logic on the iCE40 and nothing
    else; the accelerator tests would see a lost command or row as a wrong logit.

    Parameters
    ----------
    config : :class:`~sdtforge.hdl.compile.AccelConfig`
        Counter widths and lane layouts.
    event_layout, cmd_layout : :class:`~amaranth.lib.data.StructLayout`
        The event encoder's events and the PE array's commands.

    Members
    -------
    descriptor : ``In(descriptor_layout(config))``
        The descriptor register (:class:`~.program.ProgramSequencer`).
    program : ``Out(Signature(load, loaded, step, rewind, first))``
        The program sequencer's controls.
    pixels : ``In(stream.Signature(8))``
        The image's pixels (raster order, channels fastest).
    pixel_write : ``Out(pixel_write_layout(config))``
        A received pixel and its position (:class:`~.receiver.PixelReceiver`).
    loader_idle : ``In(1)``
        An image starts only between load records.
    row, row_next : ``Out(StructLayout(g, y, x, t))``
        The row nest (the row the PE array and write-back work on) and its next row (with
        one write-back cycle per row: from ``STREAM_LIF``'s read-ahead nest, a register).
    next_group : ``Out(group_bits)``
        With one write-back cycle per row: the group of the ``lif`` row the write-back may
        take in the next cycle, so it reads the row's thresholds a cycle ahead.
    row_first, row_last : ``Out(1)``
        ``t`` is the first / last step.
    read_hold : ``Out(1)``
        With a lane-serial write-back: the stream read port holds its data (``STREAM_LIF``'s
        row, the head's token) while it is offered.
    read_next : ``Out(1)``
        Address the stream memory at ``row_next`` in this cycle (``STREAM_LIF``).
    token : ``Out(StructLayout(y, x))``
        ``HEAD_SUM``'s token being summed.
    plane, lastmask : ``Out(3)``, ``Out(width)``
        ``PIXEL``'s bit-plane; the valid bits of the last input word of a position.
    fetch_start : ``Out(1)``
        Start the neighbourhood fetch of the current row.
    events : ``In(stream.Signature(event_layout))``
        The event encoder's output.
    cmd : ``Out(stream.Signature(cmd_layout))``
        Commands to the PE array.
    cmd_taken_last : ``In(1)``
        The PE array takes a command flagged ``last``.
    row_free : ``In(1)``
        The latched ``CONV`` row no longer holds the next one back: its sums are taken
        (``wb.taken``), or will be in the next cycle (the accelerator's choice, where the
        write-back takes every row at once).
    sums : ``In(stream.Signature(sums_layout()))``
        The PE array's sums of a ``PIXEL`` plane, the payload from its accumulator registers
        (``PEArray.value``; :class:`~.lane_value.LaneValue`; only where the write-back handles
        all lanes at once).
    stream_row : ``In(lane_layout("stream"))``
        The stream memory's read data.
    lif : ``Out(stream.Signature(config.lif_layout()))``
        Rows to the write-back stage (for its LIF; lane-serial: also the head's tokens).
    wb : ``Out(Signature(latch, taken, written, done))``
        The write-back stage: latch a ``CONV`` row; it has taken the row's sums; a row's
        spikes are written; it is idle.
    pool, sdsa, emit : ``Out(STAGE)``
        Start a stage (one cycle) and wait for its ``done`` (``pool`` unused where
        ``config.pool_or`` is 0).
    busy : ``Out(1)``
        From the first pixel until the result is sent.
    cycles : ``Out(RESULT_WORD_BITS)``
        The image's compute cycles.
    """

    def __init__(self, config, *, event_layout, cmd_layout):
        cfg = config
        self._config = config
        cb, tb, gb = cfg.coord_bits, cfg.step_bits, cfg.group_bits
        self.row_layout = data.StructLayout({"g": gb, "y": cb, "x": cb, "t": tb})
        lanes_acc = cfg.sums_layout()
        super().__init__({
            "descriptor": In(descriptor_layout(cfg)),
            "program": Out(wiring.Signature({"load": Out(1), "loaded": In(1), "step": Out(1),
                                             "rewind": Out(1), "first": In(1)})),
            "pixels": In(stream.Signature(8)),
            "pixel_write": Out(pixel_write_layout(cfg)),
            "loader_idle": In(1),
            "row": Out(self.row_layout),
            "row_next": Out(self.row_layout),
            **({"next_group": Out(gb)} if cfg.writeback_cycles == 1 else {}),
            "row_first": Out(1),
            "row_last": Out(1),
            "read_next": Out(1),
            "read_hold": Out(1),
            "token": Out(data.StructLayout({"y": cb, "x": cb})),
            "plane": Out(3),
            "lastmask": Out(cfg.width),
            "fetch_start": Out(1),
            "events": In(stream.Signature(event_layout)),
            "cmd": Out(stream.Signature(cmd_layout)),
            "cmd_taken_last": In(1),
            "row_free": In(1),
            **({"sums": In(stream.Signature(lanes_acc))} if cfg.writeback_cycles == 1 else {}),
            "stream_row": In(cfg.lane_layout("stream")),
            "lif": Out(stream.Signature(cfg.lif_layout())),
            "wb": Out(wiring.Signature({"latch": Out(1), "taken": In(1), "written": In(1),
                                        "done": In(1)})),
            "pool": Out(STAGE),
            "sdsa": Out(STAGE),
            "emit": Out(STAGE),
            "busy": Out(1),
            "cycles": Out(RESULT_WORD_BITS),
        })

    def elaborate(self, platform):
        cfg = self._config
        w = cfg.width
        lw = (w - 1).bit_length()               # log2 W
        cb, tb, gb, wb = cfg.coord_bits, cfg.step_bits, cfg.group_bits, cfg.word_bits
        m = Module()
        d, prog, wbk = self.descriptor, self.program, self.wb
        f = shared_fields(d)
        px = d.pixel
        is_pixel = d.op == Op.PIXEL

        # Named for the Verilog and the waveforms.
        bit = Signal(3, name="pixel_plane")
        hy, hx = Signal(cb, name="head_y"), Signal(cb, name="head_x")   # HEAD_SUM's token
        wg = Signal(address_bits(cfg.weights_depth), name="weight_base")  # the group's row 0
        lastmask = Signal(w, name="last_word_mask")
        lanes_acc = cfg.sums_layout()
        counting = Signal()
        m.submodules.receiver = recv = PixelReceiver(cfg)
        wiring.connect(m, wiring.flipped(self.pixels), recv.pixels)
        m.d.comb += [recv.descriptor.eq(d), self.pixel_write.eq(recv.write)]
        row_pending = Signal()              # a CONV row latched whose sums are not taken yet
        more_planes = Signal()              # PIXEL: a plane follows the one being drained
        start_next = Signal()               # PIXEL: start the fetch on the next plane
        gathering = Signal()                # PIXEL: in GATHER_RUN … GATHER_WAIT
        m.d.sync += start_next.eq(0)        # a pulse (GATHER_RUN sets it below)
        m.d.comb += [self.plane.eq(bit), self.token.y.eq(hy), self.token.x.eq(hx),
                     self.lastmask.eq(lastmask)]
        with m.If(counting):
            m.d.sync += self.cycles.eq(self.cycles + 1)

        # The row nest (group, position, step).
        row_shapes = {"g": gb, "y": cb, "x": cb, "t": tb}
        row_bounds = {"g": f.groups, "y": f.out_h, "x": f.out_w, "t": f.steps}
        nest = LoopNest(m, row_shapes, row_bounds, prefix="row")
        # With one write-back cycle per row, STREAM_LIF reads the stream a row ahead of the
        # nest; a second nest, a row ahead of it there, gives that row from registers (the
        # next row's wrap logic in front of the stream address was the ECP5 critical path).
        ahead = None
        if cfg.writeback_cycles == 1:
            ahead = LoopNest(m, row_shapes, row_bounds, prefix="ahead")
        for k in "gyxt":
            m.d.comb += [self.row[k].eq(nest.c[k]),
                         self.row_next[k].eq(nest.next[k] if ahead is None else ahead.c[k])]
        m.d.comb += [self.row_first.eq(nest.c["t"] == 0), self.row_last.eq(nest.last["t"])]
        wrap_y, layer_done = nest.wrap_y, nest.done

        # Events → PE commands; the row of event (tap, channel) is wg + tap·cin + channel
        # (the event's word index carries its tap's row offset above the word).
        ev = self.events.payload

        def event_row(addr):
            cw = addr[lw:lw + wb]
            return wg + addr[lw + wb:] + Mux(is_pixel, cw, Cat(addr[:lw], cw))

        ev_row = event_row(ev.addr)
        # With two events per command the second's row is the same sum over its address.
        ev_row1 = event_row(ev.addr1) if cfg.events == 2 else None

        # PIXEL's Horner sum and HEAD_SUM's token sum: LaneValue, or with a lane-serial
        # write-back the write-back itself, which folds the pixel layer's planes (from the PE
        # array) and the head's tokens (offered here, ``first`` flagged) a chunk
        # per cycle. STREAM_LIF's rows go to the LIF as read (each lane sign-extended to the
        # accumulator width).
        serial = cfg.writeback_cycles > 1
        if not serial:
            m.submodules.value = lv = LaneValue(lanes_acc)
            wiring.connect(m, wiring.flipped(self.sums), lv.sums)
        x_row = Signal(lanes_acc)
        m.d.comb += [x_row[lane].eq(self.stream_row[lane]) for lane in range(cfg.lanes)]
        if serial:
            tok_first = Signal()            # HEAD_SUM: the token offered is its row's first
            plane_first = Signal()          # PIXEL: the plane being gathered is the first
            again = Signal()                # OUT_LIF: the write-back's folded value to the LIF
            m.d.comb += [self.lif.payload.x.eq(x_row), self.lif.payload.first.eq(tok_first),
                         self.lif.payload.again.eq(again)]
        else:
            m.d.comb += [lv.pixel.eq(is_pixel), lv.row.eq(x_row),
                         self.lif.payload.eq(Mux(d.op == Op.STREAM_LIF, x_row, lv.value))]

        with m.If(self.row_free):
            m.d.sync += row_pending.eq(0)
        head_reading = Signal() if cfg.stream_latency > 1 else None
        # HEAD_SUM's last token, from registers (the descriptor is held from DECODE on, and
        # the first token is counted two cycles later, in X_READ).
        token_end = {k: Signal(len(v), name=f"head_last_{k}")
                     for k, v in (("y", f.in_h), ("x", f.in_w))}
        m.d.sync += [token_end["y"].eq(f.in_h - 1), token_end["x"].eq(f.in_w - 1)]
        s = Internals(cfg=cfg, f=f, nest=nest, wg=wg, bit=bit, hy=hy, hx=hx, ev=ev, ev_row=ev_row,
                      ev_row1=ev_row1, token_end=token_end,
                      row_pending=row_pending, more_planes=more_planes, start_next=start_next,
                      gathering=gathering, serial=serial, ahead=ahead, head_reading=head_reading,
                      **({"plane_first": plane_first, "tok_first": tok_first, "again": again}
                         if serial else {"lv": lv}))

        with m.FSM(name="layer") as fsm:
            with m.State("IDLE"):
                m.d.sync += counting.eq(0)
                m.d.comb += prog.rewind.eq(1)
                with m.If(self.pixels.valid & self.loader_idle & prog.first):
                    m.d.comb += recv.start.eq(1)
                    m.next = "FETCH0"
            with m.State("RECEIVE"):
                m.d.comb += recv.active.eq(1)
                with m.If(recv.done):
                    m.d.sync += [self.cycles.eq(0), counting.eq(1)]
                    m.next = "FETCH"
            # Descriptor load (ProgramSequencer: n_words + 1 cycles).
            with m.State("FETCH0"):
                # Descriptor 0 (the PIXEL layer) gives the image's size and pixel layout.
                m.d.comb += prog.load.eq(1)
                with m.If(prog.loaded):
                    m.next = "BOUNDS"
            with m.State("BOUNDS"):
                # The receiver takes the frame's bounds from the descriptor into registers
                # (PixelReceiver); a cycle before the first pixel, not counted.
                m.next = "RECEIVE"
            with m.State("FETCH"):
                m.d.comb += prog.load.eq(1)
                with m.If(prog.loaded):
                    m.next = "DECODE"
            with m.State("DECODE"):
                nest.write(g=0, y=0, x=0, t=0)
                if ahead is not None:
                    ahead.write(g=0, y=0, x=0, t=0)
                m.d.sync += [wg.eq(f.w_base),
                             lastmask.eq(Mux(f.cin[:lw] == 0, Const(-1, w),
                                             (Const(1, w + 1) << f.cin[:lw]) - 1))]
                with m.Switch(d.op):
                    with m.Case(Op.END):
                        m.d.sync += counting.eq(0)
                        m.d.comb += self.emit.start.eq(1)
                        m.next = "RESULT"
                    with m.Case(Op.SDSA):
                        m.d.comb += self.sdsa.start.eq(1)
                        m.next = "SDSA"
                    with m.Case(Op.CONV):
                        m.next = "CONV_START"
                    with m.Case(Op.STREAM_LIF):
                        m.next = "LIF_READ"
                    with m.Default():       # PIXEL, HEAD_SUM, POOL_OR
                        m.next = "POS"
            with m.State("POS"):
                # Start of one (group, position, step).
                m.d.sync += [bit.eq(Mux(px.per_step, recv.top, 7) if cfg.event_frames else 7),
                             hy.eq(0), hx.eq(0)]
                with m.Switch(d.op):
                    with m.Case(Op.PIXEL):
                        with m.If(self.row_first | (px.per_step if cfg.event_frames else 0)):
                            if serial:
                                m.d.sync += plane_first.eq(1)
                            else:
                                m.d.comb += lv.clear.eq(1)
                            m.next = "GATHER_CMD"
                        with m.Else():
                            if serial:          # the value folded at the first step, again
                                m.d.sync += again.eq(1)
                            m.next = "OUT_LIF"
                    with m.Case(Op.HEAD_SUM):
                        if serial:
                            m.d.sync += tok_first.eq(1)
                        else:
                            m.d.comb += lv.clear.eq(1)
                        if head_reading is not None:
                            m.d.sync += head_reading.eq(1)
                        m.next = "X_READ"
                    if cfg.pool_or:     # else no POOL_OR is compiled (AccelConfig.pool_or)
                        with m.Case(Op.POOL_OR):
                            m.d.comb += self.pool.start.eq(1)
                            m.next = "POOL"

            # ---- the operations that run rows of their own (hdl/layer_states.py) ----
            pixel_states(m, self, s)
            conv_states(m, self, s)
            stream_lif_states(m, self, s)
            head_states(m, self, s)

            # ---- PIXEL and HEAD_SUM rows to the write-back (both write spikes) ----
            with m.State("OUT_LIF"):
                m.d.comb += self.lif.valid.eq(1)
                with m.If(self.lif.ready):
                    if serial:
                        m.d.sync += again.eq(0)
                    m.next = "OUT_SPIKE"
            with m.State("OUT_SPIKE"):
                with m.If(wbk.written):
                    m.next = "NEXT"

            # ---- loop advance: time (innermost), position, group, layer ----
            with m.State("NEXT"):
                nest.advance()
                with m.If(wrap_y):
                    m.d.sync += wg.eq(wg + f.w_gstride)
                with m.If(layer_done):
                    m.d.comb += prog.step.eq(1)
                    m.next = "FETCH"
                with m.Else():
                    m.next = "POS"

            # ---- stages that read and write the spike memory themselves ----
            if cfg.pool_or:
                with m.State("POOL"):
                    with m.If(self.pool.done):
                        m.next = "NEXT"
            with m.State("SDSA"):
                with m.If(self.sdsa.done):
                    m.d.comb += prog.step.eq(1)
                    m.next = "FETCH"

            # ---- result: logits, class, cycles (the result emitter) ----
            with m.State("RESULT"):
                with m.If(self.emit.done):
                    m.d.comb += prog.rewind.eq(1)
                    m.next = "IDLE"

        # The next plane's fetch starts a cycle after the plane's last event, from a register
        # (from the event's handshake, the encoder → command queue → fetch start path was the
        # iCE40's critical path: 41.7 ns).
        with m.If(start_next):
            m.d.comb += self.fetch_start.eq(1)
        # A pixel plane's sums are taken whenever the PE array offers them, from GATHER_RUN to
        # GATHER_WAIT: a register set and cleared at those edges (decoding the four states,
        # the state register → PE array → write-back enable path was the iCE40's critical path).
        if not serial:
            m.d.comb += lv.gather.eq(gathering)

        # Busy in every state but IDLE: one compare of the state register (an OR of the
        # states' own assignments was the iCE40 critical path, into the loader's enable).
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        # The group of the row the LIF may take in the next cycle: the nest moves on every
        # cycle of STREAM_LIF's LIF_RUN (one write-back cycle per row) and holds a ``lif`` row
        # for a cycle at least elsewhere. From the state register and the nest's flags, not
        # the nest's input (whose enables come from the PE array's handshake).
        if cfg.writeback_cycles == 1:
            m.d.comb += self.next_group.eq(Mux(fsm.ongoing("LIF_RUN"), nest.next["g"],
                                               nest.c["g"]))
        return m
