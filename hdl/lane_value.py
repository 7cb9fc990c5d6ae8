"""The controller's lane value: the pixel layer's Horner sum over bit-planes and the head's
token sum, on one set of ``P`` lane adders."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["LaneValue"]


class LaneValue(wiring.Component):
    """``P`` lane values built up by one shared adder per lane.

    - ``PIXEL`` (``pixel`` high): a bit-plane's sums, taken from ``sums`` into a register,
      then the Horner step ``value ← 2·value + plane`` a cycle later (from the registered sums:
      the weight memory → PE array → Horner path was the ECP5 critical path).
    - ``HEAD_SUM`` (``pixel`` low): ``add`` sums the stream row into the value,
      ``value ← value + row``, a token per ``add``.

    **Cycle contract.** ``clear`` sets the value to 0 and ``add`` adds ``row`` in the next
    cycle; both win over a Horner step due in the same cycle (the controller never raises
    them together). While ``gather`` is high, ``sums`` are taken in every cycle they are
    offered (``sums.ready`` is ``gather``), and their Horner step is in the next cycle, so
    ``value`` holds it from the second cycle after the take.

    Parameters
    ----------
    layout : :class:`~amaranth.lib.data.ArrayLayout`
        The lanes' values (``config.lane_layout("biases")``).

    Members
    -------
    pixel : ``In(1)``
        The adders' mode: the Horner step (high) or the token sum (low).
    clear, add, gather : ``In(1)``
        Clear the value; add ``row``; take a plane's ``sums`` when offered.
    sums : ``In(stream.Signature(layout))``
        The PE array's sums of a bit-plane.
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
        plane = Signal(self._layout, name="plane_sums")
        horner = Signal(name="horner_step")
        total = Signal(self._layout)
        for lane in range(self._layout.length):
            m.d.comb += total[lane].eq(Mux(self.pixel, value[lane] << 1, value[lane])
                                       + Mux(self.pixel, plane[lane], self.row[lane]))

        m.d.comb += self.sums.ready.eq(self.gather)
        m.d.sync += horner.eq(0)
        with m.If(self.gather & self.sums.valid):
            m.d.sync += [plane.eq(self.sums.payload), horner.eq(1)]
        with m.If(self.clear):
            m.d.sync += value.eq(0)
        with m.Elif(self.add | horner):
            m.d.sync += value.eq(total)
        return m
