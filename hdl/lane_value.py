"""The controller's lane value: the pixel layer's Horner sum over bit-planes and the head's
token sum, on one set of ``P`` lane adders."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["LaneValue"]


class LaneValue(wiring.Component):
    """``P`` lane values built up by one shared adder per lane.

    - ``PIXEL`` (``pixel`` high): the Horner step ``value ← 2·value + plane`` in the cycle a
      bit-plane's sums are taken from ``sums``. Their payload must come from registers (the
      PE array's accumulators, ``PEArray.value``, which hold a drained plane's sums): the
      weight memory → PE adders → Horner path of the drained sums themselves was the ECP5
      critical path, and a register of the plane here cost a flip-flop per bit and lane.
    - ``HEAD_SUM`` (``pixel`` low): ``add`` sums the stream row into the value,
      ``value ← value + row``, a token per ``add``.

    Only where the write-back handles all lanes at once (``writeback_cycles == 1``): a
    lane-serial write-back folds the planes and tokens itself, a chunk per cycle
    (:class:`~.writeback.RowWriteBack`), on one adder per lane it handles.

    **Cycle contract.** ``clear`` sets the value to 0 and ``add`` adds ``row`` in the next
    cycle; ``clear`` wins over a take in the same cycle and ``add`` is never raised with one
    (the controller never does). While ``gather`` is
    high, ``sums`` are taken in every cycle they are offered (``sums.ready`` is ``gather``),
    and ``value`` holds their Horner step from the next cycle.

    Parameters
    ----------
    layout : :class:`~amaranth.lib.data.ArrayLayout`
        The lanes' values (``config.sums_layout()``).

    Members
    -------
    pixel : ``In(1)``
        The adders' mode: the Horner step (high) or the token sum (low).
    clear, add, gather : ``In(1)``
        Clear the value; add ``row``; take a plane's ``sums`` when offered.
    sums : ``In(stream.Signature(layout))``
        The PE array's sums of a bit-plane (the payload from its accumulator registers).
    row : ``In(layout)``
        The stream memory's read data (``add``'s addend).
    value : ``Out(layout)``
        The value, from a register.
    """

    def __init__(self, layout):
        self._layout = layout
        super().__init__({
            "pixel": In(1),
            "clear": In(1),
            "add": In(1),
            "gather": In(1),
            "sums": In(stream.Signature(layout)),
            "row": In(layout),
            "value": Out(layout),
        })

    def elaborate(self, platform):
        m = Module()
        value = self.value
        take = self.gather & self.sums.valid
        total = Signal(self._layout)
        for lane in range(self._layout.length):
            m.d.comb += total[lane].eq(Mux(self.pixel, value[lane] << 1, value[lane])
                                       + Mux(self.pixel, self.sums.payload[lane],
                                             self.row[lane]))

        m.d.comb += self.sums.ready.eq(self.gather)
        with m.If(self.clear):
            m.d.sync += value.eq(0)
        with m.Elif(self.add | take):
            m.d.sync += value.eq(total)
        return m
