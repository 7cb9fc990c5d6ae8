"""The result emitter: an image's logits, its class and its cycle count on the result stream.

The head writes the summed logits into this stage's memory, ``AccelConfig.chunk_lanes``
classes per row (``AccelConfig.lane_layout("logits")``; ``P`` unless the write-back is
lane-serial); after the image the emitter sends one word per class
(sign-extended), the class with the largest logit (the lowest index on ties) and the cycle
count — the format of :func:`decode_result`.

The result format is defined here once, for the gateware, the host driver, the cocotb bench and
the tests: :data:`RESULT_LAYOUT`, :func:`result_words`, :func:`decode_result`.
"""

from dataclasses import dataclass

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .ram import rows_apart

__all__ = ["RESULT_WORD_BITS", "RESULT_LAYOUT", "Result", "result_words", "result_class_word",
           "decode_result", "encode_result", "ResultEmitter"]


#: Bits of a result-stream word.
RESULT_WORD_BITS = 32

#: Result-stream payload: one word, ``last`` on the final word of an image's result.
RESULT_LAYOUT = data.StructLayout({"data": RESULT_WORD_BITS, "last": 1})


@dataclass(frozen=True)
class Result:
    """One image's result: the summed logits, the class (``argmax``, lowest index on ties) and
    the controller's cycle count."""

    logits: tuple
    label: int
    cycles: int


def result_words(num_classes):
    """Words of one image's result: ``num_classes`` logits, the class, the cycle count."""
    return num_classes + 2


def result_class_word(num_classes):
    """Index of the class word in an image's result (the cycle count follows it)."""
    return num_classes


def decode_result(words, num_classes):
    """The :class:`Result` of one image's ``result_words(num_classes)`` words.

    Logits are two's complement ``RESULT_WORD_BITS``-bit words; the class and the cycle count
    are unsigned. A wrong number of words raises :class:`ValueError`.
    """
    words = [int(w) for w in words]
    if len(words) != result_words(num_classes):
        raise ValueError(f"{len(words)} result words for {num_classes} classes, expected "
                         f"{result_words(num_classes)}")
    top = 1 << RESULT_WORD_BITS
    logits = tuple(w - top if w & (top >> 1) else w for w in words[:num_classes])
    k = result_class_word(num_classes)
    return Result(logits=logits, label=words[k], cycles=words[k + 1])


def encode_result(result):
    """The result-stream words of a :class:`Result`: ``[(data, last), …]`` (for test benches)."""
    mask = (1 << RESULT_WORD_BITS) - 1
    words = [v & mask for v in result.logits] + [result.label, result.cycles]
    return [(w, int(i == len(words) - 1)) for i, w in enumerate(words)]


class ResultEmitter(wiring.Component):
    """Logits memory and the result words of one image.

    Cycle contract: ``start`` in cycle ``c`` (while idle) offers the first logit in ``c + 3``;
    each logit takes three cycles (a memory read, the class's lane into a register, then the
    word) and the class and the cycle count one each, every word waiting as long as
    ``result.ready`` is low (the image's cycle count stops before ``start``). ``done`` is high in
    the cycle the cycle count is taken. ``classes`` and ``cycles`` must hold from ``start`` to
    ``done``, and ``write`` must stay idle: the memory's read port is enabled only then, so no
    enabled read meets a write (the memory is marked, :func:`~.ram.rows_apart`).

    Parameters
    ----------
    config : :class:`~sdtforge.hdl.compile.AccelConfig`
        Lanes, logit and class-index widths, logits memory depth.

    Members
    -------
    write : ``Out(memory.WritePort.Signature(...))``
        Logit rows (``ArrayLayout(signed(logit_bits), n)``, ``n = config.chunk_lanes``; row
        ``r`` holds classes ``r·n … r·n + n − 1``).
    read : ``Out(memory.ReadPort.Signature(...))``
        With a lane-serial write-back (``config.writeback_cycles > 1``): the memory's read port
        for the head's running sums (its ``en`` high while the head runs, never while the
        result is sent).
    start : ``In(1)``
        Send the result of the image whose logits are in the memory.
    classes : ``In(channel_bits)``
        Number of classes (at least 1).
    cycles : ``In(RESULT_WORD_BITS)``
        The image's cycle count.
    result : ``Out(stream.Signature(RESULT_LAYOUT))``
        Result words, ``last`` on the cycle count.
    done : ``Out(1)``
        The last word is taken this cycle.
    """

    def __init__(self, config):
        self._config = config
        self._shape = config.lane_layout("logits")
        aw = ceil_log2(config.logits_depth)
        super().__init__({
            "write": Out(memory.WritePort.Signature(addr_width=aw, shape=self._shape)),
            **({"read": Out(memory.ReadPort.Signature(addr_width=aw, shape=self._shape))}
               if config.writeback_cycles > 1 else {}),
            "start": In(1),
            "classes": In(config.channel_bits),
            "cycles": In(RESULT_WORD_BITS),
            "result": Out(stream.Signature(RESULT_LAYOUT)),
            "done": Out(1),
        })

    def elaborate(self, platform):
        cfg = self._config
        p = self._shape.length                  # classes per row
        lane_bits = (p - 1).bit_length()
        m = Module()
        # Written by the head while the program runs, read here only after `start`, with the
        # read port enabled only in READ: no enabled read meets a write (hdl.ram).
        m.submodules.mem = mem = rows_apart(memory.Memory(shape=self._shape,
                                                          depth=cfg.logits_depth, init=[]))
        wr = mem.write_port()
        wiring.connect(m, wiring.flipped(self.write), wr)
        rd = mem.read_port()
        self.logit_ports = (rd, wr)     # for testbenches (the no-collision check, hdl.ram)

        rc = Signal(cfg.channel_bits)       # class of the logit being sent
        best = Signal(signed(cfg.logit_bits))
        best_i = Signal(cfg.channel_bits)
        # A tree of two-way muxes on the lane bits, highest bit last (indexing the row with a
        # signal would build a multiply by the width; a chain of per-lane muxes is p deep).
        logits = [rd.data[i] for i in range(p)]
        for b in range(lane_bits):
            logits = [Mux(rc[b], hi, lo) for lo, hi in zip(logits[::2], logits[1::2], strict=True)]
        (logit,) = logits
        # The class's logit, registered after the lane select: the compare with the best so far
        # and the link's word start from a register, not from the memory through the select.
        value = Signal(signed(cfg.logit_bits))      # sign-extended into the 32-bit word
        last_class = Signal()
        m.d.comb += [rd.addr.eq(rc >> lane_bits if p > 1 else rc), rd.en.eq(0)]
        if cfg.writeback_cycles > 1:
            # The head's reads while it runs (the result is sent after it).
            with m.If(self.read.en):
                m.d.comb += [rd.addr.eq(self.read.addr), rd.en.eq(1)]
            m.d.comb += self.read.data.eq(rd.data)

        with m.FSM(name="result"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += rc.eq(0)
                    m.next = "READ"
            with m.State("READ"):
                m.d.comb += rd.en.eq(1)
                m.next = "SELECT"
            with m.State("SELECT"):
                # The last class's test in a register too: the class count comes from the
                # descriptor, and its compare ran on into the controller's state enable.
                m.d.sync += [value.eq(logit), last_class.eq(rc == self.classes - 1)]
                m.next = "LOGIT"
            with m.State("LOGIT"):
                m.d.comb += [self.result.valid.eq(1),
                             self.result.payload.data.eq(value)]
                with m.If(self.result.ready):
                    with m.If((rc == 0) | (value > best)):
                        m.d.sync += [best.eq(value), best_i.eq(rc)]
                    m.d.sync += rc.eq(rc + 1)
                    with m.If(last_class):
                        m.next = "CLASS"
                    with m.Else():
                        m.next = "READ"
            with m.State("CLASS"):
                m.d.comb += [self.result.valid.eq(1), self.result.payload.data.eq(best_i)]
                with m.If(self.result.ready):
                    m.next = "CYCLES"
            with m.State("CYCLES"):
                m.d.comb += [self.result.valid.eq(1), self.result.payload.data.eq(self.cycles),
                             self.result.payload.last.eq(1),
                             self.done.eq(self.result.ready)]
                with m.If(self.result.ready):
                    m.next = "IDLE"
        return m
