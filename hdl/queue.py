"""A two-entry queue of registers: the registered stage boundaries of the engine."""

from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import fifo

__all__ = ["RegisterQueue"]


class RegisterQueue(Elaboratable, fifo.FIFOInterface):
    """A first-in first-out queue of two entries whose output is a register.

    Cycle for cycle what :class:`amaranth.lib.fifo.SyncFIFO` of depth 2 does at its ports
    (``w_rdy`` while fewer than two entries are held, ``r_rdy`` while one is, an entry
    readable from the cycle after its write, no pass-through when full or empty; a test
    compares the two under random traffic), built otherwise: the oldest entry is the
    ``head`` register that drives ``r_data``, the second waits in ``tail``, and a read moves
    ``tail`` into ``head``. ``SyncFIFO`` keeps both entries in a memory: its write data feeds
    both rows, so on the iCE40 no row's flip-flop can share a logic cell with the LUT before
    it, and ``r_data`` comes through a multiplexer after them. Here ``head``'s next value is
    one multiplexer (``tail`` or the write data) that drives nothing else, so each of its
    flip-flops packs with its LUT, and ``r_data`` leaves a register: a logic cell less per
    bit, and the reader's paths start at a flip-flop. ``r_data`` is ``head`` also while the
    queue is empty (a reader looks at it only with ``r_rdy``).

    Parameters
    ----------
    width : int
        Bits per entry.

    Attributes
    ----------
    level : Signal(range(3))
        Entries held (``w_level`` and ``r_level`` too).
    """

    def __init__(self, *, width):
        super().__init__(width=width, depth=2)
        self.level = Signal(range(3))

    def elaborate(self, platform):
        m = Module()
        head = Signal(self.width)
        tail = Signal(self.width)
        level = self.level
        m.d.comb += [
            self.w_rdy.eq(level != 2),
            self.r_rdy.eq(level != 0),
            self.w_level.eq(level),
            self.r_level.eq(level),
            self.r_data.eq(head),
        ]
        do_read = self.r_rdy & self.r_en
        do_write = self.w_rdy & self.w_en
        with m.If(do_read):
            with m.If(level == 2):              # (full: no write in the same cycle)
                m.d.sync += head.eq(tail)
            with m.Elif(do_write):              # one entry, read and replaced
                m.d.sync += head.eq(self.w_data)
        with m.Elif(do_write):
            with m.If(level == 0):
                m.d.sync += head.eq(self.w_data)
            with m.Else():
                m.d.sync += tail.eq(self.w_data)
        with m.If(do_write & ~do_read):
            m.d.sync += level.eq(level + 1)
        with m.If(do_read & ~do_write):
            m.d.sync += level.eq(level - 1)
        return m
