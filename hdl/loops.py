"""The engine's loop nests (counters with registered "at the last value" flags) and map
address generators."""

from amaranth.hdl import Mux, Signal

__all__ = ["LoopNest", "MapAddress"]


class LoopNest:
    """The counters ``g`` (outer), ``y``, ``x``, ``t`` (inner) of a row nest, with flags.

    Each counter has a flag "at its last value" (``bounds``: the descriptor's counts), written
    with the counter from the value written (:meth:`write`), so the wrap conditions of the nest
    are one gate from registers: comparing counters with descriptor fields in the cycle they are
    used was the iCE40 critical path (into the next row's bias row and the stream address).

    The engine has two: the controller's (the row the PE array and the write-back work on)
    and the fetch's (the row whose words are read, which runs ahead, :mod:`.fetch`).

    Parameters
    ----------
    m : :class:`~amaranth.hdl.Module`
        The module whose ``sync`` domain holds the counters.
    shapes : dict of str to shape
        The counters' shapes (keys ``g``, ``y``, ``x``, ``t``).
    bounds : dict of str to value
        The counts (a counter runs ``0 … bound − 1``).
    prefix : :class:`str`
        Name prefix of the registers in the Verilog (``row`` → ``row_group``, ``row_y``,
        ``row_x``, ``row_step``, ``row_last_*``).

    Attributes
    ----------
    c, last : dict of str to Signal
        The counters and their flags.
    next : dict of str to value
        Each counter's value in the next row.
    wrap_x, wrap_y, done : value
        The row is the last of its position / of its group / of the nest.
    """

    def __init__(self, m, shapes, bounds, *, prefix):
        self._m = m
        self._bounds = bounds
        names = {"g": "group", "y": "y", "x": "x", "t": "step"}
        self.c = {k: Signal(shapes[k], name=f"{prefix}_{names[k]}") for k in "gyxt"}
        self.last = {k: Signal(name=f"{prefix}_last_{names[k]}") for k in "gyxt"}
        self.wrap_x = self.last["t"] & self.last["x"]     # the step and position wrap
        self.wrap_y = self.wrap_x & self.last["y"]        # the group ends
        self.done = self.wrap_y & self.last["g"]          # the nest ends
        c = self.c
        self.next = {
            "t": Mux(self.last["t"], 0, c["t"] + 1),
            "x": Mux(self.last["t"], Mux(self.wrap_x, 0, c["x"] + 1), c["x"]),
            "y": Mux(self.wrap_x, Mux(self.wrap_y, 0, c["y"] + 1), c["y"]),
            "g": Mux(self.wrap_y, c["g"] + 1, c["g"]),
        }

    def write(self, **values):
        """Set counters (and their flags) in this cycle's ``sync`` domain."""
        for k, v in values.items():
            self._m.d.sync += [self.c[k].eq(v), self.last[k].eq(v == self._bounds[k] - 1)]

    def advance(self):
        """The next row of the nest (``t`` innermost)."""
        self.write(**self.next)


class MapAddress:
    """Address generator of one memory port: ``base + (t << sht | y << shy | x << shx | word)``.

    The fields are combinational signals with a default source; :meth:`use` overrides some
    of them (later statements win), so the port's three barrel shifters and adder exist once
    however many states address it.
    """

    def __init__(self, m, name, widths, *, sh, **default):
        self._m = m
        self._f = {k: Signal(n, name=f"{name}_{k}") for k, n in widths.items() if k != "sh"}
        self._sh = [Signal(widths["sh"], name=f"{name}_sh{a}") for a in "xyt"]
        self.addr = Signal(widths["base"] + 1, name=f"{name}_addr")
        f, (shx, shy, sht) = self._f, self._sh
        m.d.comb += self.addr.eq(f["base"] + ((f["t"] << sht) | (f["y"] << shy)
                                              | (f["x"] << shx) | f["word"]))
        self.use(sh=sh, **default)

    def use(self, *, sh=None, **fields):
        self._m.d.comb += [self._f[k].eq(v) for k, v in fields.items()]
        if sh is not None:
            self._m.d.comb += [a.eq(b) for a, b in zip(self._sh, sh, strict=True)]
