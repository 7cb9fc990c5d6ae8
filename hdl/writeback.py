"""The write-back stage: a row's ``P`` lane values → spikes, a residual stream row, or logits."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .accel_isa import Mode, descriptor_widths
from .lif import LIFUnit
from .residual import AlignAdd

__all__ = ["RowWriteBack"]


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
    - ``LOGIT``: summed over the steps (``first`` restarts, ``last`` writes the logits row ``g``).

    Rows come from two sources. ``sums``: the PE array's sums of a CONV row, whose
    coordinates the controller hands over with ``latch`` when the PE array takes the row's last
    command (the controller's counters move on at once; the stage works from its own copy).
    ``lif``: a row for the LIF from the controller (the pixel layer's and the head's values,
    ``STREAM_LIF``'s stream rows) at the controller's ``row``, taken in the cycle it is
    offered (the LIF is ready then).

    **Cycle contract.** ``sums`` are taken into the sums register (``taken``) while no pooled
    merge runs and worked on in the next cycle (``done``); the row is written a cycle after
    that (``SPIKE``, ``SET``, ``ADD``) or then (``LOGIT``), and a pooled row merges for
    ``2·windows`` cycles more, during which ``sums.ready`` is low. A ``lif`` row is written in
    the cycle after it is taken. Between ``latch`` and ``done``, ``hold`` is high: the
    controller's stream and shift read ports hold the row's data (their addresses have moved
    on with the counters).

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
        The controller's row: ``t``, ``y``, ``x``, ``g``, ``first``, ``last``.
    latch : ``In(1)``
        Take ``row`` as the coordinates of the next ``sums``.
    sums : ``In(stream.Signature(ArrayLayout(signed(acc_bits), P)))``
        The PE array's sums.
    taken : ``Out(1)``
        ``sums`` are taken this cycle (into the sums register; the controller may latch the
        next row from the next cycle on).
    done : ``Out(1)``
        The sums register's row is worked on this cycle (written now or in the next cycle).
    lif : ``In(stream.Signature(ArrayLayout(signed(acc_bits), P)))``
        A row for the LIF at ``row``.
    shift, stream : ``In``
        The shift row (``AlignAdd``) and the stream row (``ADD``; the pooled merge's window)
        read by the controller's ports.
    hold : ``Out(1)``
        Hold the stream and shift read ports (from ``latch`` until the sums are taken).
    merging : ``Out(1)``
        A pooled row is being merged (the stream read port serves it).
    merge_read : ``Out(RowWriteBack.read_layout)``
        The pooled merge's stream read (``en``, ``t``, ``y``, ``x``, ``word``).
    write : ``Out(RowWriteBack.write_layout)``
        The write address (``t``, ``y``, ``x``, ``word``), with ``spk_en`` (a lane slot mask
        of the spike word), ``spk_data``, ``xs_en`` and ``xs_data``.
    logits : ``In(memory.WritePort.Signature(...))``
        The result emitter's logits memory.
    theta_write : ``Out(memory.WritePort.Signature(...))``
        The LIF's threshold memory (the model loader's).
    """

    def __init__(self, config):
        self._config = cfg = config
        widths = descriptor_widths(cfg)
        p, w = cfg.lanes, cfg.width
        self._lanes_acc = cfg.lane_layout("biases")
        self.layer_layout = data.StructLayout({
            "conv": 1, "mode": Mode, "pool": 1, "in_h": widths["in_h"], "in_w": widths["in_w"],
            "prow": widths["prow"]})
        row = {"t": cfg.step_bits, "y": cfg.coord_bits, "x": cfg.coord_bits,
               "word": max(cfg.group_bits, cfg.word_bits)}
        self.row_layout = data.StructLayout({"t": cfg.step_bits, "y": cfg.coord_bits,
                                             "x": cfg.coord_bits, "g": cfg.group_bits,
                                             "first": 1, "last": 1})
        self.read_layout = data.StructLayout({"en": 1, **row})
        self.write_layout = data.StructLayout({
            **row, "spk_en": w // p, "spk_data": w, "xs_en": 1,
            "xs_data": cfg.lane_layout("stream")})
        self._lif = LIFUnit(p, 2, cfg.acc_bits, theta_width=cfg.theta_bits,
                            theta_depth=cfg.thresholds_depth)
        super().__init__({
            "layer": In(self.layer_layout),
            "row": In(self.row_layout),
            "latch": In(1),
            "sums": In(stream.Signature(self._lanes_acc)),
            "taken": Out(1),
            "done": Out(1),
            "lif": In(stream.Signature(self._lanes_acc)),
            "shift": In(cfg.lane_layout("shifts")),
            "stream": In(cfg.lane_layout("stream")),
            "hold": Out(1),
            "merging": Out(1),
            "merge_read": Out(self.read_layout),
            "write": Out(self.write_layout),
            "logits": In(memory.WritePort.Signature(addr_width=ceil_log2(cfg.logits_depth),
                                                     shape=cfg.lane_layout("logits"))),
            "theta_write": Out(self._lif.theta_write.signature),
        })

    def elaborate(self, platform):
        cfg, lay, row = self._config, self.layer, self.row
        p, w = cfg.lanes, cfg.width
        lpw = (w // p - 1).bit_length()         # log2 (W / P): lane slots per spike word
        m = Module()
        m.submodules.lif = lif = self._lif
        m.submodules.align = align = AlignAdd(p, cfg.stream_bits, cfg.acc_bits,
                                              (1 << cfg.shift_bits) - 1,
                                              out_width=cfg.stream_bits)
        wiring.connect(m, wiring.flipped(self.theta_write), lif.theta_write)
        sums, wr = self.sums, self.write

        # The latched row (o_*) and the output registers: the row taken last cycle.
        o_t, o_y, o_x = Signal(cfg.step_bits), Signal(cfg.coord_bits), Signal(cfg.coord_bits)
        o_g, o_first, o_last = Signal(cfg.group_bits), Signal(), Signal()
        hold = Signal()
        busy = Signal()                         # a pooled row is being merged
        o_spk, o_xs = Signal(), Signal()
        logit = Signal(cfg.lane_layout("logits"))
        m.d.sync += [o_spk.eq(0), o_xs.eq(0)]

        def take_row():
            m.d.sync += [o_t.eq(row.t), o_y.eq(row.y), o_x.eq(row.x), o_g.eq(row.g),
                         o_first.eq(row.first), o_last.eq(row.last)]

        with m.If(self.latch):
            take_row()
            m.d.sync += hold.eq(1)

        # The sums register: the PE array's sums are taken into it and worked on a cycle later,
        # so the path from the weight memory through the PE array's adders ends here.
        s_valid = Signal()
        s_acc = Signal(self._lanes_acc)

        # LIF input: the CONV's sums, else the controller's rows.
        m.d.comb += [
            lif.i.payload.x.eq(Mux(lay.conv, s_acc, self.lif.payload)),
            lif.i.payload.row.eq(0),
            lif.i.payload.trow.eq(lay.prow + Mux(lay.conv, o_g, row.g)),
            lif.i.payload.first.eq(Mux(lay.conv, o_first, row.first)),
            self.lif.ready.eq(lif.i.ready & ~lay.conv),
            align.i.payload.acc.eq(s_acc),
            align.i.payload.shift.eq(self.shift),
            self.hold.eq(hold),
            self.merging.eq(busy),
        ]
        with m.If(lay.mode == Mode.ADD):
            m.d.comb += align.i.payload.stream.eq(self.stream)
        with m.If(~lay.conv & self.lif.valid):
            m.d.comb += lif.i.valid.eq(1)
            with m.If(lif.i.ready):
                take_row()
                m.d.sync += o_spk.eq(1)

        # Write address: the latched row (a spike row's word holds W / P groups).
        m.d.comb += [wr.t.eq(o_t), wr.y.eq(o_y), wr.x.eq(o_x),
                     wr.word.eq(Mux(lay.mode == Mode.SPIKE, o_g >> lpw if lpw else o_g, o_g))]
        with m.If(o_spk):
            m.d.comb += [
                lif.o.ready.eq(1),
                wr.spk_data.eq(Cat(*([lif.o.payload.spikes] * (w // p)))),
                wr.spk_en.eq(Mux(lif.o.valid, 1 << (o_g[:lpw] if lpw else 0), 0)),
            ]
        with m.If(o_xs):
            m.d.comb += [align.o.ready.eq(1), wr.xs_data.eq(align.o.payload.sum),
                         wr.xs_en.eq(align.o.valid)]

        # Pooled CONV: the shifted value of input position (pl_y, pl_x) max-merged into each
        # window (pl_wy, pl_wx) holding it: rows pl_y >> 1 … pl_wy1, columns likewise.
        phase = Signal()
        pl_t, pl_y, pl_x = Signal(cfg.step_bits), Signal(cfg.coord_bits), Signal(cfg.coord_bits)
        pl_g = Signal(cfg.group_bits)
        pl_wy, pl_wx = Signal(cfg.coord_bits), Signal(cfg.coord_bits)
        pl_wy1 = Mux(pl_y[0] & (pl_y + 1 < lay.in_h), (pl_y >> 1) + 1, pl_y >> 1)
        pl_wx1 = Mux(pl_x[0] & (pl_x + 1 < lay.in_w), (pl_x >> 1) + 1, pl_x >> 1)
        pl_first = (Mux(pl_wy == 0, pl_y == 0, pl_y == (pl_wy << 1) - 1)
                    & Mux(pl_wx == 0, pl_x == 0, pl_x == (pl_wx << 1) - 1))
        merged = Signal(cfg.lane_layout("stream"))
        for lane in range(p):
            a, b = align.o.payload.sum[lane], self.stream[lane]
            m.d.comb += merged[lane].eq(Mux(pl_first | (a > b), a, b))
        rd = self.merge_read
        m.d.comb += [rd.t.eq(pl_t), rd.y.eq(pl_wy), rd.x.eq(pl_wx), rd.word.eq(pl_g)]
        with m.If(busy):
            m.d.sync += phase.eq(~phase)
            with m.If(~phase):
                m.d.comb += rd.en.eq(1)
            with m.Else():
                m.d.comb += [wr.t.eq(pl_t), wr.y.eq(pl_wy), wr.x.eq(pl_wx), wr.word.eq(pl_g),
                             wr.xs_data.eq(merged), wr.xs_en.eq(1)]
                with m.If(pl_wx != pl_wx1):
                    m.d.sync += pl_wx.eq(pl_wx + 1)
                with m.Elif(pl_wy != pl_wy1):
                    m.d.sync += [pl_wy.eq(pl_wy + 1), pl_wx.eq(pl_x >> 1)]
                with m.Else():
                    m.d.sync += busy.eq(0)
                    m.d.comb += align.o.ready.eq(1)

        # Taking a CONV row's sums into the register (when no pooled merge runs: the row's
        # coordinates o_* are free again once it is taken), and working on them a cycle later.
        lg_sum = Signal(cfg.lane_layout("logits"))
        for lane in range(p):
            m.d.comb += lg_sum[lane].eq(Mux(o_first, 0, logit[lane]) + s_acc[lane])
        take = s_valid & ~busy
        accept = sums.valid & sums.ready
        m.d.comb += [sums.ready.eq(~busy & (~s_valid | take)), self.taken.eq(accept),
                     self.done.eq(take)]
        with m.If(accept):
            m.d.sync += [s_valid.eq(1), s_acc.eq(sums.payload)]
        with m.Elif(take):
            m.d.sync += s_valid.eq(0)
        with m.If(take):
            m.d.sync += hold.eq(0)
            with m.Switch(lay.mode):
                with m.Case(Mode.SPIKE):
                    m.d.comb += lif.i.valid.eq(1)
                    m.d.sync += o_spk.eq(1)
                with m.Case(Mode.SET, Mode.ADD):
                    m.d.comb += align.i.valid.eq(1)
                    with m.If(lay.pool):
                        m.d.sync += [busy.eq(1), phase.eq(0), pl_t.eq(o_t), pl_y.eq(o_y),
                                     pl_x.eq(o_x), pl_g.eq(o_g),
                                     pl_wy.eq(o_y >> 1), pl_wx.eq(o_x >> 1)]
                    with m.Else():
                        m.d.sync += o_xs.eq(1)
                with m.Case(Mode.LOGIT):
                    m.d.sync += logit.eq(lg_sum)
                    m.d.comb += [self.logits.addr.eq(o_g), self.logits.data.eq(lg_sum),
                                 self.logits.en.eq(o_last)]
        return m
