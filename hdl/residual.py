"""Residual add with exact alignment: ``stream + (acc << k)``, P lanes per cycle.

Writers of the residual stream are quantized at ``s_r · 2^k``; the left shift aligns them to
the stream's scale exactly (no rounding), so this is a shifter and an adder per lane.
"""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import check_positive

__all__ = ["AlignAdd"]


class AlignAdd(wiring.Component):
    """P-lane ``stream + (acc << shift)`` with a per-lane shift.

    One row per cycle; the sum is registered, latency 1 cycle. The result is ``out_width``
    bits wide; the IR's derived widths make overflow impossible, so no saturation is built.

    Parameters
    ----------
    lanes : :class:`int`
        Lanes ``P``.
    stream_width : :class:`int`
        Width of the signed residual-stream input.
    acc_width : :class:`int`
        Width of the signed accumulator input.
    max_shift : :class:`int`
        Largest alignment shift ``k``.
    out_width : :class:`int`
        Width of the signed result (default: ``stream_width``).

    Members
    -------
    i : ``In(stream.Signature(in_layout))``
        ``stream`` (``ArrayLayout(signed(stream_width), P)``), ``acc``
        (``ArrayLayout(signed(acc_width), P)``), ``shift`` (``ArrayLayout(unsigned, P)``).
    o : ``Out(stream.Signature(out_layout))``
        ``sum`` (``ArrayLayout(signed(out_width), P)``).
    """

    def __init__(self, lanes, stream_width, acc_width, max_shift, *, out_width=None):
        check_positive("Lane count", lanes)
        check_positive("Stream width", stream_width)
        check_positive("Accumulator width", acc_width)
        if not isinstance(max_shift, int) or isinstance(max_shift, bool):
            raise TypeError(f"Maximum shift must be an integer, not {max_shift!r}")
        if max_shift < 0:
            raise ValueError(f"Maximum shift must be non-negative, not {max_shift!r}")
        if out_width is None:
            out_width = stream_width
        check_positive("Output width", out_width)
        self._lanes = lanes
        self._max_shift = max_shift
        self.in_layout = data.StructLayout({
            "stream": data.ArrayLayout(signed(stream_width), lanes),
            "acc": data.ArrayLayout(signed(acc_width), lanes),
            "shift": data.ArrayLayout(max(max_shift.bit_length(), 1), lanes),
        })
        self.out_layout = data.StructLayout({
            "sum": data.ArrayLayout(signed(out_width), lanes),
        })
        super().__init__({
            "i": In(stream.Signature(self.in_layout)),
            "o": Out(stream.Signature(self.out_layout)),
        })

    def elaborate(self, platform):
        m = Module()
        out_valid = Signal()
        m.d.comb += [
            self.i.ready.eq(~out_valid | self.o.ready),
            self.o.valid.eq(out_valid),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += out_valid.eq(1)
            for lane in range(self._lanes):
                # A shift is a mux tree (Yosys $shl), never a multiplier.
                shifted = self.i.payload.acc[lane] << self.i.payload.shift[lane]
                m.d.sync += self.o.payload.sum[lane].eq(self.i.payload.stream[lane] + shifted)
        return m
