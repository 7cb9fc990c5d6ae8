"""The write-back stage: a row's ``P`` lane values → spikes, a residual stream row, or logits."""

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .accel_isa import Mode, descriptor_widths
from .lane_serial import chunk_of, collect, fold
from .lif import LIFUnit
from .pool import StreamMaxMerge
from .residual import AlignAdd

__all__ = ["RowWriteBack", "lif_membranes"]


def lif_membranes(config):
    """``(rows, bits)`` of the LIF unit's membrane memory (a block RAM candidate), or ``None``:
    with a write-back of all lanes at once (``writeback_cycles == 1``) the membranes are a
    register. A lane-serial write-back keeps a row of ``P / c`` membranes per chunk."""
    c = config.writeback_cycles
    if c == 1:
        return None
    return c, config.lanes // c * _membrane_bits(config)


def _membrane_bits(config):
    """One membrane's width: the accumulator's or the threshold's, whichever is wider."""
    return max(config.acc_bits, config.theta_bits)


class RowWriteBack(wiring.Component):
    """Output stage of the engine (owns the :class:`~.lif.LIFUnit` and the
    :class:`~.residual.AlignAdd`).

    A row is ``P`` lane values of group ``g`` at position ``(y, x)``, step ``t``. By the
    layer's ``mode`` it is written as

    - ``SPIKE``: spikes of the LIF (membranes kept across the steps of a position, ``first``
      at ``t = 0``), into lane slot ``g mod (W / P)`` of spike word ``g / (W / P)``;
    - ``SET`` / ``ADD``: ``AlignAdd(sums << shift [+ stream row])`` into stream row ``g``;
      with ``layer.pool`` (a pooled CONV; the row is an *input* position) max-merged into
      every 3×3 / stride-2 / pad-1 window holding it, read then write, one window per two
      cycles; the first input of a window (raster order) overwrites, so the stream needs no
      clearing (max and the left shift commute);
    - ``LOGIT``: summed over the steps (``first`` restarts, ``last`` writes the logits row ``g``;
      lane-serial: each chunk added to its logits row as it comes, ``first`` restarting it).

    Rows come from two sources. ``sums``: the PE array's sums of a CONV row, whose
    coordinates the controller hands over with ``latch`` when the PE array takes the row's last
    command (the controller's counters move on at once; the stage works from its own copy).
    ``lif``: a row for the LIF from the controller (the pixel layer's and the head's values,
    ``STREAM_LIF``'s stream rows) at the controller's ``row``, taken in the cycle it is
    offered when no row's chunks run (with ``c = 1`` the LIF is always ready then).

    **Cycle contract.** ``sums`` are taken into the sums register (``taken``) while no pooled
    merge runs and worked on in the next cycle (``done``); the row is written a cycle after
    that (``SPIKE``, ``SET``, ``ADD``) or then (``LOGIT``), and a pooled row merges for
    ``2·windows`` cycles more, during which ``sums.ready`` is low. A ``lif`` row is written in
    the cycle after it is taken. Between ``latch`` and ``done``, ``hold`` is high: the
    controller's stream and shift read ports hold the row's data (their addresses have moved
    on with the counters).

    With ``c = config.writeback_cycles > 1`` (lane-serial) a row is worked on in ``c`` chunks of
    ``P / c`` lanes, one per cycle, from its start (the cycle after the take, and at least ``c``
    cycles after the previous row's start); the sums register shifts down a chunk per chunk
    (a ``lif`` row's lanes after its first chunk go into it at the start), so the next row's
    sums are taken in the row's last chunk at the earliest; its shift and stream lanes and its
    coordinates are copied into the stage's own registers at the start, which is then
    ``taken``. The row is written a cycle after its last chunk (``done``), a pooled row merges
    after that; a pooled row's sums are not taken while the previous row's chunks run, a
    ``lif`` row is not taken either. Each
    chunk's values get their biases here (``config.writeback_bias``; the PE array's sums and
    the controller's pixel values come without them): bias row ``(prow + g)·c + chunk`` of the
    stage's bias memory, read a cycle ahead (the chunk after a row's chunk, or the next row's
    first), so no cycle is added; the layers whose values have no bias (``STREAM_LIF``,
    ``HEAD_SUM``) have rows of zeros there. The pixel layer's planes (``sums`` rows,
    ``plane_first`` flagged) and the head's tokens (``lif`` rows, ``first`` flagged) are
    folded into the result emitter's memory instead of going to the LIF, and an ``again`` row
    sends their value there (:func:`~.lane_serial.fold`), which the controller offers once the
    position's last plane has started (``taken``).

    Parameters
    ----------
    config : :class:`~sdtforge.hdl.compile.AccelConfig`
        Lanes, word width, value widths and loop-counter widths.

    Members
    -------
    layer : ``In(RowWriteBack.layer_layout)``
        ``conv`` (``sums`` rows, else ``lif`` rows), ``mode``, ``pool``, ``in_h``/``in_w``
        (the pooled CONV's map), ``prow`` (the layer's first threshold row).
    row : ``In(RowWriteBack.row_layout)``
        The controller's row: ``t``, ``y``, ``x``, ``g``, ``first``, ``last``; with
        ``c = 1``, ``g_next``: its group in the next cycle (a ``lif`` row's threshold row is
        read a cycle ahead).
    latch : ``In(1)``
        Take ``row`` as the coordinates of the next ``sums``.
    sums : ``In(stream.Signature(ArrayLayout(signed(acc_bits), P)))``
        The PE array's sums.
    taken : ``Out(1)``
        ``sums`` are taken this cycle (into the sums register; with ``c > 1``: the row
        starts); the controller may latch the next row from the next cycle on.
    done : ``Out(1)``
        A row's last chunk is worked on this cycle (it is written now or in the next cycle)
        and no later CONV row is latched.
    lif : ``In(stream.Signature(config.lif_layout()))``
        A row for the LIF at ``row`` (lane-serial: ``x``, ``first``, ``again``).
    plane_first : ``In(1)``
        With ``c > 1``: the ``sums`` row's bit-plane is the pixel position's first.
    shift, stream : ``In``
        The shift row (``AlignAdd``) and the stream row (``ADD``; the pooled merge's window)
        read by the controller's ports.
    hold : ``Out(1)``
        Hold the stream and shift read ports (from ``latch`` until the row starts, the cycle
        after its sums are taken: the ports read again in that cycle).
    merging : ``Out(1)``
        A pooled row is being merged (the stream read port serves it).
    merge_read : ``Out(RowWriteBack.read_layout)``
        The pooled merge's stream read (``en``, ``t``, ``y``, ``x``, ``word``).
    write : ``Out(RowWriteBack.write_layout)``
        The write address (``t``, ``y``, ``x``, ``word``), with ``spk_en`` (a lane slot mask
        of the spike word), ``spk_data``, ``xs_en`` and ``xs_data``.
    logits : ``In(memory.WritePort.Signature(...))``
        The result emitter's logits memory.
    logits_read : ``In(memory.ReadPort.Signature(...))``
        Its read port while the head runs (only with ``c > 1``).
    theta_write : ``Out(memory.WritePort.Signature(...))``
        The LIF's threshold memory (the model loader's).
    bias_write : ``Out(memory.WritePort.Signature(...))``
        The bias memory (the model loader's; only with ``config.writeback_bias``).
    """

    def __init__(self, config):
        self._config = cfg = config
        widths = descriptor_widths(cfg)
        p, w = cfg.lanes, cfg.width
        self._lanes_acc = cfg.sums_layout()
        c = cfg.writeback_cycles
        self.layer_layout = data.StructLayout({
            "conv": 1, "mode": Mode, "pool": 1, "in_h": widths["in_h"], "in_w": widths["in_w"],
            "prow": widths["prow"], **({"pixel": 1, "head": 1} if c > 1 else {})})
        row = {"t": cfg.step_bits, "y": cfg.coord_bits, "x": cfg.coord_bits,
               "word": max(cfg.group_bits, cfg.word_bits)}
        self.row_layout = data.StructLayout({
            "t": cfg.step_bits, "y": cfg.coord_bits, "x": cfg.coord_bits, "g": cfg.group_bits,
            "first": 1, "last": 1, **({"g_next": cfg.group_bits} if c == 1 else {})})
        self.read_layout = data.StructLayout({"en": 1, **row})
        self.write_layout = data.StructLayout({
            **row, "spk_en": w // p, "spk_data": w, "xs_en": 1,
            "xs_data": cfg.lane_layout("stream")})
        self._lif = LIFUnit(p // c, c, cfg.acc_bits, v_width=_membrane_bits(cfg),
                            theta_width=cfg.theta_bits, theta_depth=cfg.thresholds_depth,
                            chunks=c, theta_ahead=c == 1)
        super().__init__({
            "layer": In(self.layer_layout),
            "row": In(self.row_layout),
            "latch": In(1),
            "sums": In(stream.Signature(self._lanes_acc)),
            "taken": Out(1),
            "done": Out(1),
            "lif": In(stream.Signature(cfg.lif_layout())),
            **({"plane_first": In(1)} if c > 1 else {}),
            "shift": In(cfg.lane_layout("shifts")),
            "stream": In(cfg.lane_layout("stream")),
            "hold": Out(1),
            "merging": Out(1),
            "merge_read": Out(self.read_layout),
            "write": Out(self.write_layout),
            "logits": In(memory.WritePort.Signature(addr_width=ceil_log2(cfg.logits_depth),
                                                     shape=cfg.lane_layout("logits"))),
            **({"logits_read": In(memory.ReadPort.Signature(
                addr_width=ceil_log2(cfg.logits_depth), shape=cfg.lane_layout("logits")))}
               if c > 1 else {}),
            "theta_write": Out(self._lif.theta_write.signature),
            **({"bias_write": Out(memory.WritePort.Signature(
                addr_width=ceil_log2(cfg.biases_depth), shape=cfg.lane_layout("biases")))}
               if cfg.writeback_bias else {}),
        })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        cfg, lay, row = self._config, self.layer, self.row
        p, w, c = cfg.lanes, cfg.width, cfg.writeback_cycles
        n = p // c                              # lanes worked on per cycle
        lpw = (w // p - 1).bit_length()         # log2 (W / P): lane slots per spike word
        m = Module()
        m.submodules.lif = lif = self._lif
        m.submodules.align = align = AlignAdd(n, cfg.stream_bits, cfg.acc_bits,
                                              (1 << cfg.shift_bits) - 1,
                                              out_width=cfg.stream_bits)
        wiring.connect(m, wiring.flipped(self.theta_write), lif.theta_write)
        sums, wr = self.sums, self.write
        lif_x = self.lif.payload.x if c > 1 else self.lif.payload
        is_xs = lay.conv & ((lay.mode == Mode.SET) | (lay.mode == Mode.ADD))

        # The latched row (o_*): a CONV row's coordinates from ``latch`` until its sums are
        # taken, a ``lif`` row's from its take.
        o = {k: Signal(len(row[k]), name=f"o_{k}") for k in ("t", "y", "x", "g", "first",
                                                              "last")}
        hold = Signal()
        busy = Signal()                         # a pooled row is being merged

        def take_row():
            m.d.sync += [o[k].eq(row[k]) for k in o]

        with m.If(self.latch):
            take_row()
            m.d.sync += hold.eq(1)

        # The sums register: the PE array's sums are taken into it and worked on a cycle later,
        # so the path from the weight memory through the PE array's adders ends here.
        s_valid = Signal()
        s_acc = Signal(self._lanes_acc)

        # A row is worked on ``n`` lanes per cycle, in ``c`` chunks. Chunk 0 starts it, from
        # the sums register (CONV) or the controller's ``lif`` row, with the shift and stream
        # rows of the read ports; the other chunks' values wait in the sums register, their
        # shift and stream lanes in ``rest_*`` registers, all shifted down a chunk per cycle,
        # so the latched row and the read ports are free once the row starts (as with
        # ``c = 1``). The row's coordinates are kept in ``w_*`` for its later chunks and its
        # write.
        running = Signal()                      # chunks 1 … c − 1 of a row
        k = Signal(range(c), name="chunk") if c > 1 else Const(0, 1)
        start_conv = s_valid & ~busy & ~running     # (c > 1: a PIXEL plane's sums as well)
        if c == 1:
            start_lif = ~lay.conv & self.lif.valid & lif.i.ready & ~running
        else:
            # A row from ``lif`` (the pixel layer's or the head's value, ``again``; HEAD_SUM's
            # tokens; STREAM_LIF's rows): where the sums register is empty.
            from_lif0 = ~lay.conv & ~s_valid
            s_first = Signal()              # the sums register's pixel plane is the first
            with m.If(sums.valid & sums.ready):
                m.d.sync += s_first.eq(self.plane_first)
            lif_can = from_lif0 & ~running
            lif_free = lif_can & lif.i.ready
            start_lif = lif_free & self.lif.valid
        start = start_conv | start_lif
        feed = start | running                  # a chunk is worked on this cycle
        last_chunk = (running & (k == c - 1)) if c > 1 else start
        first_of = {key: Mux(lay.conv, o[key], row[key]) for key in o}   # chunk 0's row
        if c > 1:
            w_row = {key: Signal(len(row[key]), name=f"w_{key}") for key in o}
            cur = {key: Mux(running, w_row[key], first_of[key]) for key in o}
            with m.If(start):
                m.d.sync += [w_row[key].eq(first_of[key]) for key in o]
                m.d.sync += [running.eq(1), k.eq(1)]
            with m.If(running):
                m.d.sync += k.eq(k + 1)
                with m.If(k == c - 1):
                    m.d.sync += running.eq(0)
        else:
            # Written the cycle after the row starts, from its own copy of the coordinates:
            # the next row may be latched as this one starts (``taken`` the cycle before).
            w_row = {key: Signal(len(row[key]), name=f"w_{key}") for key in o}
            cur = first_of
            with m.If(start):
                m.d.sync += [w_row[key].eq(first_of[key]) for key in o]

        def chunk(name, source):
            return chunk_of(m, name, source, n, start, running)

        if c == 1:
            x = Signal(self._lanes_acc, name="row_values")
            m.d.comb += x.eq(Mux(lay.conv, s_acc, lif_x))
        else:
            # The sums register is the row's shift register: chunk k is its lowest lanes
            # after k shifts. A ``lif`` row's chunk 0 comes straight from the controller, its
            # other lanes into the register then.
            elem = Shape.cast(self._lanes_acc.elem_shape).width
            low = Mux(from_lif0 & ~running, lif_x.as_value()[:n * elem],
                      s_acc.as_value()[:n * elem])
            x = data.ArrayLayout(self._lanes_acc.elem_shape, n)(low)
            pad = Const(0, n * elem)
            with m.If(start_lif):
                m.d.sync += s_acc.eq(Cat(lif_x.as_value()[n * elem:], pad))
            with m.Elif(feed):
                m.d.sync += s_acc.eq(Cat(s_acc.as_value()[n * elem:], pad))
        is_logit = lay.conv & (lay.mode == Mode.LOGIT)
        if c == 1:
            is_lif = ~lay.conv | (lay.mode == Mode.SPIKE)
        else:
            # The row's flags, from registers: ``first`` (the pixel layer's first plane, the
            # PE array's tag with its sums; the head's first token, from ``lif``) and
            # ``again`` (from ``lif``: the kept value of the pixel layer or the head, to the
            # LIF).
            flags0 = {"first": Mux(from_lif0, self.lif.payload.first, s_first),
                      "again": from_lif0 & self.lif.payload.again}
            flags = {}
            for key, value in flags0.items():
                reg = Signal(name=f"w_{key}_flag")
                with m.If(start):
                    m.d.sync += reg.eq(value)
                flags[key] = Mux(running, reg, value)
            # To the LIF: a CONV row of a SPIKE layer, the kept value of the pixel layer or
            # the head, every STREAM_LIF row.
            is_lif = Mux(lay.conv, lay.mode == Mode.SPIKE,
                         flags["again"] | ~(lay.pixel | lay.head))
        # Rows read a cycle ahead (biases, lane-serial logits): this row's next chunk while
        # ``more`` follow, else the next row's first.
        more = feed & ~last_chunk
        if c > 1:
            x = fold(self, m, x, k, more, cur, first_of, flags, is_logit, feed)
        if c == 1:
            # The shift row from a register, the port's data a cycle before the row starts
            # (the port holds it from the cycle after the latch, and a row starts two cycles
            # after its latch at the earliest): the ECP5's block RAM output was the critical
            # path, through the shifters into the stream adders. The LIF reads its threshold
            # row a cycle ahead likewise (``theta_ahead``): a CONV row's from the latched row,
            # a ``lif`` row's from the controller's ``next_group``.
            shift = Signal(cfg.lane_layout("shifts"), name="shift_row")
            m.d.sync += shift.eq(self.shift)
            m.d.comb += lif.trow_ahead.eq(lay.prow + Mux(lay.conv, o["g"], row.g_next))
        else:
            shift = chunk("shift", self.shift)
            m.d.comb += [lif.i.payload.chunk.eq(k), lif.i.payload.trow.eq(lay.prow + cur["g"])]
        stream_in = chunk("stream", self._stream_word(m, hold, start_conv))

        # Chunks into the LIF (spikes), AlignAdd (stream rows) or the logit sums.
        o_spk, o_spk_last, o_xs, o_xs_last = Signal(), Signal(), Signal(), Signal()
        m.d.sync += [o_spk.eq(0), o_xs.eq(0)]
        m.d.comb += [
            lif.i.payload.x.eq(x),
            lif.i.payload.row.eq(k),
            lif.i.payload.first.eq(cur["first"]),
            self.lif.ready.eq(lif.i.ready & ~lay.conv & ~running if c == 1 else lif_free),
            # Only a CONV row reaches AlignAdd: with c = 1 its sums register, so a STREAM_LIF
            # row's read data (into ``x``) has no path into the adders.
            align.i.payload.acc.eq(s_acc if c == 1 else x),
            align.i.payload.shift.eq(shift),
            # The ports read again in the row's start cycle: the row takes their data in that
            # cycle, and a row latched in it (``taken`` the cycle before) finds its own data
            # there from the next cycle on, held.
            self.hold.eq(hold & ~start_conv),
            self.merging.eq(busy),
        ]
        with m.If(lay.mode == Mode.ADD):
            m.d.comb += align.i.payload.stream.eq(stream_in)
        with m.If(start_lif):
            take_row()

        # Pooled CONV: the row's shifted value max-merged into each window holding it.
        merge = StreamMaxMerge(m, cfg, lay, busy)

        # Each chunk's result a cycle later: the earlier chunks of a row are collected
        # (``coll_*``) and the row is written with its last.
        xs_row = cfg.lane_layout("stream")(
            collect(m, "xs", o_xs & ~o_xs_last, align.o.payload.sum.as_value(), c))
        spk_row = collect(m, "spk", o_spk & ~o_spk_last, lif.o.payload.spikes, c)
        # The LIF's input: a CONV row's chunk 0 when it starts, the controller's row while
        # offered (taken when the LIF is ready, ``start_lif``), a row's later chunks.
        if c == 1:
            m.d.comb += lif.i.valid.eq(Mux(lay.conv, start_conv & is_lif,
                                           self.lif.valid & ~running) | (running & is_lif))
        else:
            m.d.comb += lif.i.valid.eq((start_conv | (lif_can & self.lif.valid) | running)
                                       & is_lif)
        with m.If(feed):
            with m.If(is_lif):
                m.d.sync += [o_spk.eq(1), o_spk_last.eq(last_chunk)]
            with m.If(is_xs):
                m.d.comb += align.i.valid.eq(1)
                with m.If(lay.pool & last_chunk):
                    m.d.sync += merge.start(cur)
                with m.Else():
                    m.d.sync += [o_xs.eq(1), o_xs_last.eq(last_chunk)]

        # Write address: the row's coordinates (a spike row's word holds W / P groups).
        m.d.comb += [wr.t.eq(w_row["t"]), wr.y.eq(w_row["y"]), wr.x.eq(w_row["x"]),
                     wr.word.eq(Mux(lay.mode == Mode.SPIKE,
                                    w_row["g"] >> lpw if lpw else w_row["g"], w_row["g"]))]
        with m.If(o_spk):
            m.d.comb += lif.o.ready.eq(1)
            with m.If(o_spk_last):
                m.d.comb += [
                    wr.spk_data.eq(Cat(*([spk_row] * (w // p)))),
                    wr.spk_en.eq(Mux(lif.o.valid, 1 << (w_row["g"][:lpw] if lpw else 0), 0)),
                ]
        with m.If(o_xs):
            m.d.comb += align.o.ready.eq(1)
            with m.If(o_xs_last):
                m.d.comb += [wr.xs_data.eq(xs_row), wr.xs_en.eq(align.o.valid)]

        # The merge's last write: with a stream read of several cycles a pooled layer ends
        # there (its last row's merge would outlast the next descriptor's fetch, whose map
        # the write address follows, and the next layer may read the windows).
        merge_end = Signal()
        merge.drive(xs_row, self.stream, self.merge_read, wr,
                    [align.o.ready.eq(1), merge_end.eq(1)])
        row_end = last_chunk
        if cfg.stream_latency > 1:
            row_end = Mux(lay.conv & lay.pool, merge_end, last_chunk)

        if c == 1:
            # Logits, summed over the steps: the running sum in a register, written at the
            # last step. (Lane-serial: ``lane_serial.fold``.) A LOGIT row is a CONV row, so its
            # values and flags come straight from the sums register and the latched row, not
            # through the op's selects (from the descriptor through them into the logits
            # memory's write data was an ECP5 critical path).
            lg_sum = Signal(data.ArrayLayout(signed(cfg.logit_bits), n))
            logit = Signal(data.ArrayLayout(signed(cfg.logit_bits), p))
            for lane in range(n):
                m.d.comb += lg_sum[lane].eq(Mux(o["first"], 0, logit[lane]) + s_acc[lane])
            with m.If(feed & is_logit):
                m.d.sync += logit.eq(lg_sum)
                m.d.comb += [self.logits.addr.eq(o["g"]), self.logits.data.eq(lg_sum),
                             self.logits.en.eq(last_chunk & o["last"])]

        # Taking a CONV row's sums into the register: when it is free (its row started) and
        # no pooled merge runs (nor a pooled row's later chunks: its merge follows them).
        accept = sums.valid & sums.ready
        m.d.comb += [
            # c > 1: the register is free in the row's last chunk (a pooled row's sums
            # wait until its merge is over).
            sums.ready.eq(~busy & ~(running & lay.pool)
                          & (~s_valid | (start_conv if c == 1 else last_chunk))),
            # c > 1: the next row may end in the PE array once this one started (its
            # coordinates and read-port data are the write-back's own from then on).
            self.taken.eq(accept if c == 1 else start_conv),
            # A row's last chunk, and no later CONV row latched (it may be, with c > 1, while
            # the row's chunks run): the controller's CONV_END waits for the layer's last row.
            self.done.eq(row_end & ~(hold & ~start_conv)),
        ]
        with m.If(accept):
            m.d.sync += [s_valid.eq(1), s_acc.eq(sums.payload)]
        with m.Elif(start_conv if c == 1 else last_chunk):
            m.d.sync += s_valid.eq(0)
        with m.If(start_conv & ~self.latch):       # a row latched as this one starts holds
            m.d.sync += hold.eq(0)
        return m

    def _stream_word(self, m, hold, start_conv):
        """A CONV row's stream word (``ADD``) where its row starts.

        With a one-cycle read (``stream_latency = 1``) the read port's: the row nest reads it
        while the row gathers and the port holds it from the row's latch (``hold``) until
        the row starts. With ``L`` cycles the nest reads its row's word every cycle; a row
        starts at least two cycles after its latch, within ``L`` of it the port's data is
        still the row's (the next row's first read arrives ``L + 1`` cycles after the latch),
        and after that the word kept in ``held`` (taken ``L`` cycles after the latch, from
        the latch cycle's read). The next row latches only after this one starts, so one
        register holds the only row waiting.
        """
        latency = self._config.stream_latency
        if latency == 1:
            return self.stream
        layout = self.stream.shape()
        held = Signal(layout, name="xs_held")
        use_held = Signal(name="xs_use_held")
        delay = [Signal(name=f"latch_d{k}") for k in range(1, latency + 1)]
        m.d.sync += [delay[0].eq(self.latch),
                     *(b.eq(a) for a, b in zip(delay, delay[1:], strict=False))]
        with m.If(delay[-1] & hold):
            m.d.sync += [held.eq(self.stream), use_held.eq(1)]
        with m.If(start_conv):
            m.d.sync += use_held.eq(0)
        return layout(Mux(use_held, held, self.stream))
