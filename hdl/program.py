"""The program stage: the program memory and the descriptor register."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from .accel_isa import PROGRAM_WORD_BITS, address_bits, descriptor_layout, descriptor_words
from .ram import loader_filled

__all__ = ["ProgramSequencer"]


class ProgramSequencer(wiring.Component):
    """Holds the compiled program and presents one descriptor at a time.

    The descriptor register is a shift register of program words (flip-flops with an enable):
    a load shifts in the ``n`` words of descriptor ``pc`` (:func:`~.accel_isa.descriptor_words`),
    lowest first. Its layout (:func:`~.accel_isa.descriptor_layout`) is a union of one view
    per operation; each stage reads its fields through its operation's view.

    **Cycle contract.** ``load`` held high reads descriptor ``pc``: word ``k`` is addressed in
    cycle ``k`` and shifted in the cycle after, so a load takes ``n + 1`` cycles, ``loaded``
    being high in the last. The register keeps the previous descriptor during the first
    cycle (the last row of a pipelined CONV may still be writing with it). ``step`` moves
    ``pc`` to the next descriptor, ``rewind`` to the first; descriptor ``k`` starts at program
    word ``k·n``: a shift when ``n`` is a power of two, else a running base (no multiplier).

    Parameters
    ----------
    config : :class:`~sdtforge.hdl.compile.AccelConfig`
        Program depth and the descriptor layout.

    Members
    -------
    write : ``In(memory.WritePort.Signature(...))``
        The program memory's write port (the model loader's).
    load : ``In(1)``
        Read descriptor ``pc`` into the register (hold until ``loaded``).
    loaded : ``Out(1)``
        The register holds descriptor ``pc`` from the next cycle on.
    step, rewind : ``In(1)``
        ``pc ← pc + 1`` / ``pc ← 0``.
    first : ``Out(1)``
        ``pc`` is the first descriptor.
    descriptor : ``Out(descriptor_layout(config))``
        The descriptor register.
    """

    def __init__(self, config):
        self._config = config
        self._words = descriptor_words(config)
        super().__init__({
            "write": In(memory.WritePort.Signature(
                addr_width=address_bits(config.program_depth),
                shape=config.row_bits("program"))),
            "load": In(1),
            "loaded": Out(1),
            "step": In(1),
            "rewind": In(1),
            "first": Out(1),
            "descriptor": Out(descriptor_layout(config)),
        })

    def elaborate(self, platform):
        cfg, n = self._config, self._words
        m = Module()
        m.submodules.mem = mem = loader_filled(memory.Memory(shape=cfg.row_bits("program"),
                                                             depth=cfg.program_depth, init=[]))
        wr, rd = mem.write_port(), mem.read_port()
        m.d.comb += [wr.addr.eq(self.write.addr), wr.data.eq(self.write.data),
                     wr.en.eq(self.write.en)]

        bits = Signal(PROGRAM_WORD_BITS * n)
        pc = Signal(address_bits(-(-cfg.program_depth // n)))
        fw = Signal(range(n + 1))           # program word being read
        m.d.comb += [self.descriptor.eq(bits[:len(self.descriptor.as_value())]),
                     self.first.eq(pc == 0)]
        if n & (n - 1) == 0:
            m.d.comb += rd.addr.eq(Cat(fw[:(n - 1).bit_length()], pc))
            base = None
        else:
            base = Signal(address_bits(cfg.program_depth))
            m.d.comb += rd.addr.eq(base + fw)

        with m.If(self.step):
            m.d.sync += pc.eq(pc + 1)
            if base is not None:
                m.d.sync += base.eq(base + n)
        with m.If(self.rewind):
            m.d.sync += pc.eq(0)
            if base is not None:
                m.d.sync += base.eq(0)
        with m.If(self.load):
            m.d.sync += fw.eq(fw + 1)
            with m.If(fw != 0):
                m.d.sync += bits.eq(Cat(bits[PROGRAM_WORD_BITS:], rd.data))
            with m.If(fw == n):
                m.d.sync += fw.eq(0)
                m.d.comb += self.loaded.eq(1)
        return m
