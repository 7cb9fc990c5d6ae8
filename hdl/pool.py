"""Max-pooling reducers: OR of spike words, and lane-wise signed max of integer rows.

The 3×3 / stride-2 / pad-1 pool of the SPS stem is done as a reduction over the window's
in-bounds positions, which the controller reads from the bitmap (or integer) buffer in order:
``first`` marks the window's first item and ``last`` its final one, on which the result is
emitted. Padding never takes part: spikes pad with 0 (neutral for OR) and the integer pool pads
with −∞ (PyTorch semantics), so the controller simply skips out-of-bounds positions. An output
position costs as many cycles as its window has in-bounds positions (at most 9); for an
``H×W`` map that is ``Σ`` over output windows, about ``2.25·H·W`` reads.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import check_positive

__all__ = ["SpikeMaxPool", "IntMaxPool"]


class _Reducer(wiring.Component):
    def __init__(self, item_shape):
        self.in_layout = data.StructLayout({"data": item_shape, "first": 1, "last": 1})
        self.out_layout = data.StructLayout({"data": item_shape})
        super().__init__({
            "i": In(stream.Signature(self.in_layout)),
            "o": Out(stream.Signature(self.out_layout)),
        })

    def _combine(self, m, acc, item):
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
