"""Load-stream parser: records of (target, address, count, data) → memory write ports.

Framing (``docs/accelerator.md`` §2): target (1 byte), address (4 bytes LE), count (4 bytes
LE), then ``count`` words of ``ceil(row_bits/8)`` bytes each, little-endian. Every model memory
is written this way at run time, because the UP5K's SPRAM (where weights live on that board)
has no bitstream initialization.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .accel_isa import RECORD_HEADER_BYTES, Target

__all__ = ["Loader"]

_PORTS = (("program", Target.PROGRAM), ("weights", Target.WEIGHTS),
          ("biases", Target.BIASES), ("thresholds", Target.THRESHOLDS),
          ("shifts", Target.SHIFTS), ("pixels", Target.PIXELS))


def _aw(depth):
    return max((depth - 1).bit_length(), 0)


class Loader(wiring.Component):
    """Byte-stream model loader.

    One byte per cycle; after the last byte of a word, one cycle writes it (``i.ready`` is low
    then). Accepts bytes only while ``enable`` is high.

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
        Between records (no record is partly received).
    program, weights, biases, thresholds, shifts, pixels : ``Out(memory.WritePort.Signature)``
        Write ports (plain ``row_bits``-wide data) of the target memories.
    """

    def __init__(self, config):
        self._config = config
        members = {"i": In(stream.Signature(8)), "enable": In(1), "idle": Out(1)}
        for name, _ in _PORTS:
            members[name] = Out(memory.WritePort.Signature(
                addr_width=_aw(config.depth(name)), shape=config.row_bits(name)))
        super().__init__(members)

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        nbytes = {name: (cfg.row_bits(name) + 7) // 8 for name, _ in _PORTS}
        maxb = max(nbytes.values())

        # Address and count registers as wide as the largest memory needs: a record that
        # overruns its memory is a host bug (the encoder never makes one).
        aw = max(_aw(cfg.depth(name)) for name, _ in _PORTS)
        header = Signal(8 * (RECORD_HEADER_BYTES - 1))    # shift register, newest byte on top
        hb = Signal(range(RECORD_HEADER_BYTES))
        target = Signal(8)
        addr = Signal(aw)
        count = Signal(aw + 1)
        word = Signal(8 * maxb)
        k = Signal(range(maxb + 1))
        last_byte = Signal()
        for name, tgt in _PORTS:
            with m.If(target == tgt.value):
                m.d.comb += last_byte.eq(k == nbytes[name] - 1)

        byte = self.i.payload
        with m.FSM(name="loader"):
            with m.State("HEADER"):
                m.d.comb += [self.idle.eq(hb == 0), self.i.ready.eq(self.enable)]
                with m.If(self.i.valid & self.i.ready):
                    m.d.sync += [header.eq(Cat(header[8:], byte)), hb.eq(hb + 1)]
                    with m.If(hb == RECORD_HEADER_BYTES - 1):
                        # The eight bytes before this one: target, address (4), count (3).
                        m.d.sync += [hb.eq(0), k.eq(0), target.eq(header[:8]),
                                     addr.eq(header[8:40]),
                                     count.eq(Cat(header[40:64], byte))]
                        with m.If((header[40:64] == 0) & (byte == 0)):
                            m.next = "HEADER"
                        with m.Else():
                            m.next = "DATA"
            with m.State("DATA"):
                m.d.comb += self.i.ready.eq(self.enable)
                with m.If(self.i.valid & self.i.ready):
                    # A shift register (flip-flops with an enable, no multiplexers): a word of
                    # n bytes ends up in the top n bytes, least significant byte lowest.
                    m.d.sync += [word.eq(Cat(word[8:], byte)), k.eq(k + 1)]
                    with m.If(last_byte):
                        m.next = "WRITE"
            with m.State("WRITE"):
                for name, tgt in _PORTS:
                    port = getattr(self, name)
                    m.d.comb += [port.addr.eq(addr),
                                 port.data.eq(word[8 * (maxb - nbytes[name]):]),
                                 port.en.eq(target == tgt.value)]
                m.d.sync += [addr.eq(addr + 1), count.eq(count - 1), k.eq(0)]
                with m.If(count == 1):
                    m.next = "HEADER"
                with m.Else():
                    m.next = "DATA"
        return m
