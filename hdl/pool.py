"""Max-pooling reducers: OR of spike words, and lane-wise signed max of integer rows.

The 3×3 / stride-2 / pad-1 pool of the SPS stem is done as a reduction over the window's
in-bounds positions, which the controller reads from the bitmap (or integer) buffer in order:
``first`` marks the window's first item and ``last`` its final one, on which the result is
emitted. Padding never takes part: spikes pad with 0 (neutral for OR) and the integer pool pads
with −∞ (PyTorch semantics), so the controller simply skips out-of-bounds positions. An output
position costs as many cycles as its window has in-bounds positions (at most 9); for an
``H×W`` map that is ``Σ`` over output windows, about ``2.25·H·W`` reads.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import check_positive

__all__ = ["SpikeMaxPool", "IntMaxPool", "SpikePoolStage", "StreamMaxMerge"]


class _Reducer(wiring.Component):
    def __init__(self, item_shape):
        self.in_layout = data.StructLayout({"data": item_shape, "first": 1, "last": 1})
        self.out_layout = data.StructLayout({"data": item_shape})
        super().__init__({
            "i": In(stream.Signature(self.in_layout)),
            "o": Out(stream.Signature(self.out_layout)),
        })

    def _combine(self, m, out, acc, item):
        """Drive ``out`` with ``acc`` merged with ``item`` (combinationally, in ``m``)."""
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        acc = Signal(self.in_layout["data"].shape)
        out_valid = Signal()
        out_data = Signal.like(acc)
        # Items are folded into `acc`; a window's result moves to an output register on its
        # `last` item, so the next window can start while the result waits for `o.ready`.
        merged = Signal.like(acc)
        self._combine(m, merged, acc, self.i.payload.data)
        m.d.comb += [
            self.i.ready.eq(~out_valid | self.o.ready | ~self.i.payload.last),
            self.o.valid.eq(out_valid),
            self.o.payload.data.eq(out_data),
        ]
        value = Mux(self.i.payload.first, self.i.payload.data, merged)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            with m.If(self.i.payload.last):
                m.d.sync += [out_data.eq(value), out_valid.eq(1)]
            with m.Else():
                m.d.sync += acc.eq(value)
        return m


class SpikeMaxPool(_Reducer):
    """Spike max-pool (OR) over a window of ``W``-bit spike words.

    One item per cycle; the result of a window appears on ``o`` one cycle after its ``last``
    item is accepted. A window of ``k`` items costs ``k`` cycles.

    Parameters
    ----------
    width : :class:`int`
        Word width ``W``.

    Members
    -------
    i : ``In(stream.Signature(in_layout))``
        ``data`` (``W`` bits), ``first`` (first item of a window), ``last`` (final item).
    o : ``Out(stream.Signature(out_layout))``
        ``data``: OR of the window's items.
    """

    def __init__(self, width):
        check_positive("Word width", width)
        super().__init__(width)

    def _combine(self, m, out, acc, item):
        m.d.comb += out.eq(acc | item)


class IntMaxPool(_Reducer):
    """Integer max-pool: lane-wise signed maximum over a window of P-lane rows.

    Timing as :class:`SpikeMaxPool`.

    Parameters
    ----------
    lanes : :class:`int`
        Lanes ``P`` (channels per item).
    width : :class:`int`
        Signed value width.

    Members
    -------
    i : ``In(stream.Signature(in_layout))``
        ``data`` (``ArrayLayout(signed(width), P)``), ``first``, ``last``.
    o : ``Out(stream.Signature(out_layout))``
        ``data``: lane-wise maximum of the window's items.
    """

    def __init__(self, lanes, width):
        check_positive("Lane count", lanes)
        check_positive("Value width", width)
        self._lanes = lanes
        super().__init__(data.ArrayLayout(signed(width), lanes))

    def _combine(self, m, out, acc, item):
        for lane in range(self._lanes):
            m.d.comb += out[lane].eq(Mux(item[lane] > acc[lane], item[lane], acc[lane]))


class SpikePoolStage(wiring.Component):
    """The ``POOL_OR`` stage: one output word of a spike max-pool per ``start``.

    For output position ``at`` it reads the in-bounds input positions of its 3×3 / stride-2 /
    pad-1 window in raster order (``read``; the controller adds the map base, the step and the
    word), ORs them in a :class:`SpikeMaxPool` and writes the result (``write``; the
    controller addresses the output position). Built with ``stride1``, a ``stride1`` input
    high selects stride 1 (a DVS model's erosion, the output map the input's size).

    **Cycle contract.** ``start`` is taken in the cycle it is high; each window position costs
    two cycles (read, reduce), and the write one more, with ``done`` high (combinationally)
    in that cycle: ``2·positions + 1`` cycles per output word.

    Parameters
    ----------
    width : :class:`int`
        Word width ``W``.
    coord_width : :class:`int`
        Width of a map coordinate.
    stride1 : :class:`bool`
        Build the ``stride1`` input.

    Members
    -------
    at : ``In(SpikePoolStage.at_layout)``
        The output position ``y``, ``x`` (held while the stage runs).
    in_h, in_w : ``In(coord_width + 1)``
        The input map's size.
    start : ``In(1)``
        Pool the window of ``at``.
    stride1 : ``In(1)``
        Only when built with ``stride1``: stride 1 instead of 2 (held while the stage runs).
    read : ``Out(SpikePoolStage.read_layout)``
        The spike read port's request: ``en`` (low: hold the data), input position ``y``,
        ``x``.
    data : ``In(width)``
        The read port's data (of the request a cycle before).
    write : ``Out(SpikePoolStage.write_layout)``
        ``en`` and ``data`` of the output word.
    done : ``Out(1)``
        The output word is written this cycle.
    """

    def __init__(self, width, coord_width, *, stride1=False):
        check_positive("Word width", width)
        check_positive("Coordinate width", coord_width)
        self._width, self._cb, self._stride1 = width, coord_width, stride1
        self.at_layout = data.StructLayout({"y": coord_width, "x": coord_width})
        self.read_layout = data.StructLayout({"en": 1, "y": coord_width, "x": coord_width})
        self.write_layout = data.StructLayout({"en": 1, "data": width})
        super().__init__({
            "at": In(self.at_layout),
            "in_h": In(coord_width + 1),
            "in_w": In(coord_width + 1),
            "start": In(1),
            "read": Out(self.read_layout),
            "data": In(width),
            "write": Out(self.write_layout),
            "done": Out(1),
            **({"stride1": In(1)} if stride1 else {}),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.orpool = orpool = SpikeMaxPool(self._width)
        oy, ox = self.at.y, self.at.x
        # The window's centre: input (2·oy, 2·ox), or (oy, ox) at stride 1.
        cy, cx = oy << 1, ox << 1
        if self._stride1:
            cy, cx = Mux(self.stride1, oy, cy), Mux(self.stride1, ox, cx)
        wy, wx = Signal(2), Signal(2)       # the window position: input (cy + wy − 1, …)
        first = Signal()
        # The window's in-bounds rows and columns are a range.
        wy0, wx0 = Mux(oy == 0, 1, 0), Mux(ox == 0, 1, 0)
        wy1 = Mux(cy + 1 >= self.in_h, 1, 2)
        wx1 = Mux(cx + 1 >= self.in_w, 1, 2)
        last = (wy == wy1) & (wx == wx1)
        # The input position read, ``(cy + wy − 1, cx + wx − 1)``, in registers that move with
        # ``wy`` and ``wx`` (the READ state's address; from the controller's row through this
        # adder into the spike read address was an ECP5 critical path).
        ry, rx = Signal(self._cb, name="read_y"), Signal(self._cb, name="read_x")
        rx0 = (cx + wx0 - 1)[:self._cb]         # the window's first in-bounds column
        m.d.comb += [
            self.read.en.eq(1),
            self.read.y.eq(ry),
            self.read.x.eq(rx),
            orpool.i.payload.data.eq(self.data),
            orpool.i.payload.first.eq(first), orpool.i.payload.last.eq(last),
            self.write.data.eq(orpool.o.payload.data),
        ]
        with m.FSM(name="pool_seq"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [wy.eq(wy0), wx.eq(wx0), first.eq(1),
                                 ry.eq((cy + wy0 - 1)[:self._cb]), rx.eq(rx0)]
                    m.next = "READ"
            with m.State("READ"):
                m.next = "REDUCE"
            with m.State("REDUCE"):
                m.d.comb += [self.read.en.eq(0), orpool.i.valid.eq(1)]
                with m.If(orpool.i.ready):
                    m.d.sync += first.eq(0)
                    with m.If(last):
                        m.next = "WRITE"
                    with m.Elif(wx == wx1):
                        m.d.sync += [wx.eq(wx0), wy.eq(wy + 1), rx.eq(rx0), ry.eq(ry + 1)]
                        m.next = "READ"
                    with m.Else():
                        m.d.sync += [wx.eq(wx + 1), rx.eq(rx + 1)]
                        m.next = "READ"
            with m.State("WRITE"):
                m.d.comb += [orpool.o.ready.eq(1), self.write.en.eq(orpool.o.valid)]
                with m.If(orpool.o.valid):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
        return m



class StreamMaxMerge:
    """The write-back's pooled max-merge of stream rows (a pooled ``CONV``), in its module.

    A pooled ``CONV`` row is an *input* position ``(y, x)``: its shifted value is max-merged into
    each 3×3 / stride-2 / pad-1 window ``(wy, wx)`` holding it (rows ``y >> 1`` and, where ``y`` is
    odd and not the map's last row, ``(y >> 1) + 1``; columns likewise), read then write, one
    window per two cycles (with a stream read of ``cfg.stream_latency = 3`` cycles the reads
    are pipelined: ``n`` windows in ``n + 3`` cycles). The first input of a window (raster
    order) overwrites, so the stream needs no clearing (max and the left shift commute). Not a
    component: its registers and multiplexers are the write-back's
    (:class:`~.writeback.RowWriteBack`), which starts a merge with a row's last chunk
    (:meth:`start`) and lets it drive the stream ports while ``busy`` (:meth:`drive`).

    Parameters
    ----------
    m : :class:`~amaranth.hdl.Module`
        The write-back's module.
    cfg : :class:`~sdtforge.hdl.compile.AccelConfig`
        Coordinate, step and group widths; the stream's read latency.
    layer : struct view
        The write-back's layer fields (``in_h``, ``in_w``: the input map's size).
    busy : Signal
        Set while a merge runs (the write-back's; it takes no sums meanwhile).
    """

    def __init__(self, m, cfg, layer, busy):
        self._m, self.busy = m, busy
        self.phase = Signal()
        self.t, self.y, self.x = (Signal(cfg.step_bits, name="pl_t"),
                                  Signal(cfg.coord_bits, name="pl_y"),
                                  Signal(cfg.coord_bits, name="pl_x"))
        self.g = Signal(cfg.group_bits, name="pl_g")
        self.wy = Signal(cfg.coord_bits, name="pl_wy")
        self.wx = Signal(cfg.coord_bits, name="pl_wx")
        self._layer = layer
        # An input position lies in two windows along an axis where it is odd and not the
        # map's last (else in one). Whether the row has a next window along each axis is
        # kept in registers (``x_more``, ``y_more``; ``x_two``: the column's count, for each
        # new window row), set from the row's coordinates when it starts: from the position
        # registers through the edge compares into the merge's end and on into the
        # write-back's enables was the iCE40's critical path.
        self.x_two = Signal(name="pl_x_two")
        self.x_more = Signal(name="pl_x_more")
        self.y_more = Signal(name="pl_y_more")
        y, x, wy, wx = self.y, self.x, self.wy, self.wx
        self.first = (Mux(wy == 0, y == 0, y == (wy << 1) - 1)
                      & Mux(wx == 0, x == 0, x == (wx << 1) - 1))
        self._latency = cfg.stream_latency
        self._reading = Signal(name="pl_reading")   # latency > 1: windows left to read

    def start(self, cur):
        """``sync`` statements that start merging the row at ``cur`` (``t``, ``y``, ``x``,
        ``g``)."""
        x_two = cur["x"][0] & (cur["x"] + 1 < self._layer.in_w)
        y_two = cur["y"][0] & (cur["y"] + 1 < self._layer.in_h)
        return [self.busy.eq(1), self.phase.eq(0), self.t.eq(cur["t"]), self.y.eq(cur["y"]),
                self.x.eq(cur["x"]), self.g.eq(cur["g"]),
                self.wy.eq(cur["y"] >> 1), self.wx.eq(cur["x"] >> 1),
                self.x_two.eq(x_two), self.x_more.eq(x_two), self.y_more.eq(y_two),
                *([self._reading.eq(1)] if self._latency > 1 else [])]

    def drive(self, row, stream, read, write, done):
        """While ``busy``: read each window's stream row (``read``, the merge read port's
        fields), write the lane-wise max of ``row`` and it (``write``, the write port's fields),
        then move to the next window; ``done`` (statements) at the last."""
        m = self._m
        if self._latency > 1:
            self._drive_pipelined(row, stream, read, write, done)
            return
        merged = self._merged(row, stream, self.first)
        m.d.comb += [read.t.eq(self.t), read.y.eq(self.wy), read.x.eq(self.wx),
                     read.word.eq(self.g)]
        with m.If(self.busy):
            m.d.sync += self.phase.eq(~self.phase)
            with m.If(~self.phase):
                m.d.comb += read.en.eq(1)
            with m.Else():
                self._write(write, self.wy, self.wx, merged)
                with self._next_window():
                    m.d.sync += self.busy.eq(0)
                    m.d.comb += done

    def _merged(self, row, stream, first):
        """The lane-wise max of ``row`` and a window's ``stream`` row (``row`` where the window
        has no input before it, ``first``)."""
        merged = Signal(row.shape(), name="merged")
        for lane in range(row.shape().length):
            a, b = row[lane], stream[lane]
            self._m.d.comb += merged[lane].eq(Mux(first | (a > b), a, b))
        return merged

    def _write(self, write, wy, wx, merged):
        """``comb``: write ``merged`` to window (``wy``, ``wx``) of the row's step and group."""
        self._m.d.comb += [write.t.eq(self.t), write.y.eq(wy), write.x.eq(wx),
                           write.word.eq(self.g), write.xs_data.eq(merged), write.xs_en.eq(1)]

    def _next_window(self):
        """``sync``: move ``wy``, ``wx`` to the row's next window; returns the context (an
        ``Else``) whose statements run at its last window instead."""
        m = self._m
        with m.If(self.x_more):
            m.d.sync += [self.wx.eq(self.wx + 1), self.x_more.eq(0)]
        with m.Elif(self.y_more):
            m.d.sync += [self.wy.eq(self.wy + 1), self.wx.eq(self.x >> 1),
                         self.x_more.eq(self.x_two), self.y_more.eq(0)]
        return m.Else()

    def _drive_pipelined(self, row, stream, read, write, done):
        """:meth:`drive` over a read port of ``latency`` cycles (``AccelConfig.stream_latency``):
        the windows are read on consecutive cycles and each is written when its row arrives,
        ``latency`` cycles after its read (a row's windows are distinct rows of the stream, so
        none is read before an earlier one is written); ``n`` windows take ``n + latency``
        cycles."""
        m, lat = self._m, self._latency
        # Each read's window (``wy``, ``wx``) and ``first`` flag, to its write.
        pipe = [{"valid": Signal(name=f"pl_valid{k}"),
                 "wy": Signal.like(self.wy, name=f"pl_wy{k}"),
                 "wx": Signal.like(self.wx, name=f"pl_wx{k}"),
                 "first": Signal(name=f"pl_first{k}")} for k in range(lat)]
        reading = self._reading & self.busy
        src = {"valid": reading, "wy": self.wy, "wx": self.wx, "first": self.first}
        for stage in pipe:
            m.d.sync += [stage[k].eq(v) for k, v in src.items()]
            src = stage
        out = pipe[-1]
        merged = self._merged(row, stream, out["first"])
        m.d.comb += [read.t.eq(self.t), read.y.eq(self.wy), read.x.eq(self.wx),
                     read.word.eq(self.g), read.en.eq(reading)]
        with m.If(reading):
            with self._next_window():
                m.d.sync += self._reading.eq(0)
        with m.If(out["valid"]):
            self._write(write, out["wy"], out["wx"], merged)
            # The last window's write: nothing read or in flight behind it.
            with m.If(~self._reading & ~Cat(*(st["valid"] for st in pipe[:-1])).any()):
                m.d.sync += self.busy.eq(0)
                m.d.comb += done
