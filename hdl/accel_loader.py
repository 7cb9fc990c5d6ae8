"""Load-stream parser: records of (target, address, count, data) → memory write ports.

Framing (``docs/accelerator.md`` §2): target (1 byte), address (4 bytes LE), count (4 bytes
LE), then ``count`` words of ``ceil(row_bits/8)`` bytes each, little-endian; a record that does
not fit its memory is refused with nothing written. Every model memory is written this way at
run time, because the UP5K's SPRAM (where weights live on that board) has no bitstream
initialization.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .accel_isa import RECORD_HEADER_BYTES, Target

__all__ = ["Loader"]

_PORTS = (("program", Target.PROGRAM), ("weights", Target.WEIGHTS),
          ("biases", Target.BIASES), ("thresholds", Target.THRESHOLDS),
          ("shifts", Target.SHIFTS), ("pixels", Target.PIXELS))


class Loader(wiring.Component):
    """Byte-stream model loader.

    One byte per cycle; after the last byte of a word, one cycle writes it (``i.ready`` is low
    then), and after a record's header two cycles check it. Accepts bytes only while ``enable``
    is high.

    A record whose target names no memory, or whose rows run past the end of its memory, is
    refused whole: nothing of it is written, ``error`` rises and stays high, and every later
    byte is taken and dropped, until the loader is reset (the board's host link resets the
    engine at the start of every load, so a bad stream never leaves the loader out of step).

    Parameters
    ----------
    config : :class:`~sdtforge.hdl.compile.AccelConfig`
        Row widths and depths of the memories.

    Members
    -------
    i : ``In(stream.Signature(8))``
        Load-stream bytes.
    enable : ``In(1)``
        The engine is idle and the memories may be written.
    idle : ``Out(1)``
        Between records (no record is partly received) and no record was refused.
    error : ``Out(1)``
        A record was refused (sticky until reset).
    program, weights, biases, thresholds, shifts, pixels : ``Out(memory.WritePort.Signature)``
        Write ports (plain ``row_bits``-wide data) of the target memories.
    """

    def __init__(self, config):
        self._config = config
        members = {"i": In(stream.Signature(8)), "enable": In(1), "idle": Out(1),
                   "error": Out(1)}
        for name, _ in _PORTS:
            members[name] = Out(memory.WritePort.Signature(
                addr_width=ceil_log2(config.depth(name)), shape=config.row_bits(name)))
        super().__init__(members)

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        nbytes = {name: (cfg.row_bits(name) + 7) // 8 for name, _ in _PORTS}
        maxb = max(nbytes.values())

        # Address and count registers as wide as the largest memory needs; the header's wider
        # fields are checked against the target memory before a record is accepted.
        aw = max(ceil_log2(cfg.depth(name)) for name, _ in _PORTS)
        # One shift register, newest byte on top, takes a record's header and then its
        # words: the header is in its top bytes once received, a word of n bytes in its top
        # n bytes (flip-flops with an enable, no multiplexers). The header's fields are
        # copied out before the first word arrives.
        wb = max(maxb, RECORD_HEADER_BYTES)
        word = Signal(8 * wb)
        header = word[8 * (wb - RECORD_HEADER_BYTES):]
        h_target, h_addr, h_count = header[:8], header[8:40], header[40:72]
        hb = Signal(range(RECORD_HEADER_BYTES))
        target = Signal(8)
        addr = Signal(aw)
        count = Signal(aw + 1)
        k = Signal(range(maxb + 1))
        last_byte = Signal()
        for name, tgt in _PORTS:
            with m.If(target == tgt.value):
                m.d.comb += last_byte.eq(k == nbytes[name] - 1)
        # The record check, one register stage: the end row (address + count), whether the
        # header's upper address and count bits are zero, and the target memory's depth.
        rec_end = Signal(aw + 2)
        rec_high = Signal()
        rec_depth = Signal(aw + 2)
        rec_known = Signal()

        byte = self.i.payload
        with m.FSM(name="loader"):
            with m.State("HEADER"):
                m.d.comb += [self.idle.eq(hb == 0), self.i.ready.eq(self.enable)]
                with m.If(self.i.valid & self.i.ready):
                    m.d.sync += [word.eq(Cat(word[8:], byte)), hb.eq(hb + 1)]
                    with m.If(hb == RECORD_HEADER_BYTES - 1):
                        m.d.sync += hb.eq(0)
                        m.next = "CHECK"
            with m.State("CHECK"):
                m.d.sync += [rec_end.eq(h_addr[:aw] + h_count[:aw + 1]),
                             rec_high.eq((h_addr[aw:] != 0) | (h_count[aw + 1:] != 0)),
                             rec_known.eq(0), rec_depth.eq(0),
                             k.eq(0), target.eq(h_target), addr.eq(h_addr[:aw]),
                             count.eq(h_count[:aw + 1])]
                for name, tgt in _PORTS:
                    with m.If(h_target == tgt.value):
                        m.d.sync += [rec_known.eq(1), rec_depth.eq(cfg.depth(name))]
                m.next = "ACCEPT"
            with m.State("ACCEPT"):
                with m.If(~rec_known | rec_high | (rec_end > rec_depth)):
                    m.next = "REFUSED"
                with m.Elif(count == 0):
                    m.next = "HEADER"
                with m.Else():
                    m.next = "DATA"
            with m.State("DATA"):
                m.d.comb += self.i.ready.eq(self.enable)
                with m.If(self.i.valid & self.i.ready):
                    # A word of n bytes ends up in the top n bytes, least significant byte
                    # lowest.
                    m.d.sync += [word.eq(Cat(word[8:], byte)), k.eq(k + 1)]
                    with m.If(last_byte):
                        m.next = "WRITE"
            with m.State("WRITE"):
                for name, tgt in _PORTS:
                    port = getattr(self, name)
                    m.d.comb += [port.addr.eq(addr),
                                 port.data.eq(word[8 * (wb - nbytes[name]):]),
                                 port.en.eq(target == tgt.value)]
                m.d.sync += [addr.eq(addr + 1), count.eq(count - 1), k.eq(0)]
                with m.If(count == 1):
                    m.next = "HEADER"
                with m.Else():
                    m.next = "DATA"
            with m.State("REFUSED"):
                m.d.comb += [self.error.eq(1), self.i.ready.eq(self.enable)]
        return m
