"""Gateware side of the host link: frames in from the UART, streams to the accelerator.

A whole frame is buffered and its checksum checked before anything reaches the accelerator, so
a corrupt or truncated frame never half-loads a model or half-feeds an image. The board answers
every frame it receives with exactly one reply frame (see :mod:`sdtforge.boards.protocol`) and
never waits without a bound: a gap longer than ``timeout`` cycles inside a frame, an accelerator
that takes no load or pixel byte for ``timeout`` cycles, or one that offers no result within
``watchdog`` cycles of its last pixel, ends the request with an ``ERROR`` reply, and the latter
two reset the engine (``engine_reset``), so the next request finds it idle.

Model loads are transactions (``LOAD_BEGIN``, ``LOAD`` chunks with an alternating sequence
bit, ``LOAD_END``): ``LOAD_BEGIN`` resets the engine and its loader (a load cut anywhere is simply
started again), and the model counts as loaded (``loaded``; ``INFO`` shows its id) only after
``LOAD_END`` has matched the stream's length and byte sum and found the loader between records
with no record refused. ``CLASSIFY`` without a loaded model answers ``ERROR NO_MODEL`` at once.

Results are not buffered: the ``RESULT`` reply (whose length is known in advance) starts as soon
as the accelerator offers its first result word, and its payload is sent straight from the
``result`` stream, one word held at a time, the next word taken only when the previous one's bytes
are out (the accelerator holds a word while it is not taken).
"""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from sdtforge.hdl.result import RESULT_LAYOUT, result_class_word, result_words

from .protocol import (
    ACK_BYTES,
    DIGEST_BYTES,
    ERROR_BYTES,
    INFO_BYTES,
    LOAD_END_BYTES,
    MODEL_ID_BYTES,
    SYNC,
    Command,
    ErrorCode,
    Reply,
    crc8,
)
from .uart import RxPayload

__all__ = ["HostLink", "ResultPayload", "crc8_next"]

#: The accelerator's result-stream payload (:data:`~sdtforge.hdl.result.RESULT_LAYOUT`).
ResultPayload = RESULT_LAYOUT


def _crc_taps(crc_fn, width):
    """Which bits of ``crc ^ (byte << (width - 8))`` each next CRC bit is the XOR of.

    A non-reflected CRC's byte step depends on that XOR alone and is linear over GF(2), so
    each next bit is an XOR tree of some of its bits; ``crc_fn(data, crc)`` is the software CRC.
    """
    return [[i for i in range(width) if (crc_fn(b"\0", 1 << i) >> j) & 1] for j in range(width)]


_CRC8_TAPS = _crc_taps(crc8, 8)


def _xor_bits(x, taps):
    out = x[taps[0]]
    for i in taps[1:]:
        out = out ^ x[i]
    return out


def crc8_next(crc, byte):
    """One CRC-8/SMBUS byte step as combinational logic: eight XOR trees."""
    x = crc ^ byte
    return Cat(*(_xor_bits(x, taps) for taps in _CRC8_TAPS))


class HostLink(wiring.Component):
    """Frame decoder/encoder between a UART and the accelerator's streams.

    Parameters
    ----------
    image_bytes : int
        Size of one image (the ``CLASSIFY`` payload).
    num_classes : int
        Number of logits in a result.
    max_payload : int
        Largest accepted payload (the frame buffer's depth); at least ``image_bytes``.
    timeout : int
        Ticks (see ``tick``) of silence inside a frame after which it is dropped, and ticks the
        accelerator may refuse a load or pixel byte before it is reset.
    watchdog : int, optional
        Ticks from an image's last pixel to its first result word after which the
        accelerator is reset (its longest inference must be shorter); by default ``timeout``.
    digest : bytes, optional
        ``DIGEST_BYTES`` naming the accelerator's hardware configuration, reported by ``INFO``
        (:func:`~sdtforge.boards.image.config_digest`); zeros by default.
    position_bits : int
        Width of the load position (the longest load stream is ``2**position_bits - 1`` bytes).

    Members
    -------
    rx : In(stream.Signature(RxPayload))
        Characters from :class:`~sdtforge.boards.uart.UARTRx`.
    tx : Out(stream.Signature(8))
        Characters to :class:`~sdtforge.boards.uart.UARTTx`.
    load : Out(stream.Signature(8))
        The accelerator's model-load byte stream.
    pixels : Out(stream.Signature(8))
        The accelerator's pixel stream. Only one of the two is ever valid, and both carry
        the same payload (the frame buffer's byte), so one queue may take both.
    load_idle, load_error : In(1)
        The accelerator's loader is between records (and every byte sent to it taken); it
        refused a record.
    result : In(stream.Signature(ResultPayload))
        The accelerator's result words: ``num_classes`` logits, the class, the cycle count
        (``last``). They are streamed into the ``RESULT`` reply as the UART sends it (the link
        counts the words, so ``num_classes`` must be the accelerator's); a word is taken only
        once the previous one is sent, so the stream sees back-pressure.
    engine_reset : Out(1)
        One-cycle pulse that resets the accelerator (and its loader); memories keep their data.
        From a register, a cycle after the link decides it: the accelerator's reset (every
        register's enable on the iCE40) then starts no long path (from the link's state, it
        was the iCE40 board's critical path).
    loaded : Out(1)
        A model load passed its ``LOAD_END`` check.
    tick : In(1, init=1)
        Advances the timeouts: high every cycle by default, or a one-cycle pulse every ``2**k``
        cycles from a counter the top has anyway (the timer is then ``k`` bits narrower).
    """

    def __init__(self, *, image_bytes, num_classes, max_payload=256, timeout=1_000_000,
                 watchdog=None, digest=bytes(DIGEST_BYTES), position_bits=32):
        if watchdog is None:
            watchdog = timeout
        for name, value, low in [("image_bytes", image_bytes, 1), ("num_classes", num_classes, 1),
                                 ("max_payload", max_payload, 8), ("timeout", timeout, 16),
                                 ("watchdog", watchdog, 16), ("position_bits", position_bits, 8)]:
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer of at least {low}, not {value!r}")
        if num_classes > 255:
            raise ValueError(f"num_classes must be at most 255, not {num_classes!r}")
        if position_bits > 32:
            raise ValueError(f"position_bits must be at most 32, not {position_bits!r}")
        if not isinstance(digest, bytes) or len(digest) != DIGEST_BYTES:
            raise ValueError(f"digest must be {DIGEST_BYTES} bytes, not {digest!r}")
        self._image_bytes = image_bytes
        self._num_classes = num_classes
        self._max_payload = max(max_payload, image_bytes, LOAD_END_BYTES)
        self._timeout = timeout
        self._watchdog = watchdog
        self._digest = digest
        self._position_bits = position_bits
        super().__init__({
            "rx": In(stream.Signature(RxPayload)),
            "tx": Out(stream.Signature(8)),
            "load": Out(stream.Signature(8)),
            "pixels": Out(stream.Signature(8)),
            "result": In(stream.Signature(ResultPayload)),
            "load_idle": In(1),
            "load_error": In(1),
            "engine_reset": Out(1),
            "loaded": Out(1),
            "tick": In(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self._max_payload
        m.submodules.buf = buf = Memory(shape=8, depth=depth, init=[])
        wr = buf.write_port()
        # A synchronous read port, so the buffer maps onto block RAM (an asynchronous one
        # becomes thousands of flip-flops on iCE40). It is addressed with the *next* value of
        # `count`, so `rd.data` always shows the byte at `count`.
        rd = buf.read_port()

        cmd = Signal(8)
        length = Signal(16)
        # `count` addresses the frame buffer (an over-long frame is skipped by counting its
        # `length` down instead), so it is only as wide as the buffer.
        count = Signal(range(depth + 1))
        count_next = Signal.like(count)
        # `length - 1`, registered with `length`: the "last payload byte" test is then an
        # equality, not an adder and a comparator in series (the link's critical path on iCE40).
        length_m1 = Signal.like(count)
        short = length[:len(count)]     # the length of a frame that fits the buffer
        crc = Signal(8)
        uart_err = Signal()
        # Counts down and expires when it goes negative: the test is then the sign bit, not a
        # wide comparison with zero on every state's path. Loaded with `timeout - 1` for gaps
        # and stalled streams, with `watchdog - 1` while an inference runs.
        timer = Signal((max(self._timeout, self._watchdog) - 1).bit_length() + 1)
        expired = timer[-1]
        # Error codes are small: a 4-bit register, zero-extended into the reply.
        error = Signal(4, init=ErrorCode.CHECKSUM.value)
        lost = Signal()     # an overrun was reported and no whole frame has come since

        # The load transaction: open, bytes passed to the loader so far and their sum.
        in_load = Signal()
        loaded = Signal()
        load_pos = Signal(self._position_bits)
        load_sum = Signal(16)
        pos_bytes = Cat(load_pos, Const(0, 32 - self._position_bits))   # as u32 LE
        # The sequence bit the next LOAD chunk must carry, the one of the LOAD answered, and
        # the running match of LOAD_END's length and sum with the board's own.
        seq_expect = Signal()
        seq_ack = Signal()
        end_ok = Signal()
        m.d.comb += self.loaded.eq(loaded)

        # Reply being sent: header, then a payload produced by `payload_byte`, then the CRC.
        reply = Signal(Reply, init=Reply.ACK)
        tx_crc = Signal(8)
        # The RESULT payload: every result word as its 4 bytes (LE), but the class as 1 byte.
        n_result = 4 * result_words(self._num_classes) - 3
        lengths = {Reply.ACK: ACK_BYTES, Reply.ERROR: ERROR_BYTES, Reply.INFO: INFO_BYTES,
                   Reply.RESULT: n_result}
        tx_count = Signal(range(max(lengths.values())))
        payload_byte = Signal(8)
        # The CRC takes each sent byte one cycle later: the byte multiplexer and the
        # CRC's XOR trees in series were the link's critical path. A character takes many
        # cycles on the line, so the CRC is always settled before it is sent.
        sent = Signal(8)
        sent_pending = Signal()
        with m.If(sent_pending):
            m.d.sync += [tx_crc.eq(crc8_next(tx_crc, sent)), sent_pending.eq(0)]

        # RESULT payload: the result word being sent, shifted right a byte per byte sent (so
        # the byte out is always its low byte: no byte multiplexer), and how many of its bytes
        # are left after the current one (3 for a logit or the cycle count, 0 for the class).
        # `need_word` asks the result stream for the next word once a word's bytes are out.
        class_at = 4 * result_class_word(self._num_classes)   # payload offset of the class
        word = Signal(32)
        word_left = Signal(2)
        need_word = Signal()
        id_bytes = Signal(8 * MODEL_ID_BYTES)

        rx_byte = self.rx.payload.data
        m.d.comb += [count_next.eq(count), rd.addr.eq(count_next), wr.addr.eq(count),
                     wr.data.eq(rx_byte)]
        # Both byte streams carry the buffer's byte at `count` (each is valid in its own state
        # only), so a consumer that takes them through one queue needs no payload select.
        m.d.comb += [self.load.payload.eq(rd.data), self.pixels.payload.eq(rd.data)]
        m.d.sync += count.eq(count_next)

        # Payload byte k of each reply kind.
        with m.Switch(reply):
            with m.Case(Reply.ERROR):
                err = Cat(error, Const(0, 4), cmd)
                m.d.comb += payload_byte.eq(err.word_select(tx_count[0], 8))
            with m.Case(Reply.ACK):
                m.d.comb += payload_byte.eq(Mux(tx_count[0], seq_ack, cmd))
            with m.Case(Reply.INFO):
                info = Cat(id_bytes, Const(self._num_classes, 8),
                           Const(self._image_bytes, 16), loaded, Const(0, 7),
                           Const(int.from_bytes(self._digest, "little"), 8 * DIGEST_BYTES))
                # The id bytes read as zeros unless a load has passed its check.
                m.d.comb += payload_byte.eq(Mux(loaded | (tx_count >= MODEL_ID_BYTES),
                                                info.word_select(tx_count[:4], 8), 0))
            with m.Case(Reply.RESULT):
                # Logits (LE), the class byte, the cycle count (LE), from the held word.
                m.d.comb += payload_byte.eq(word[:8])

        # Each reply kind has a fixed payload length, so the length is decoded from `reply`
        # (no length register written from every state that starts a reply: its enable was
        # the link's critical path on iCE40). `reply_last` is the length - 1, so the end test
        # is an equality.
        reply_len = Signal(16)
        reply_last = Signal.like(tx_count)
        with m.Switch(reply):
            for kind, length_ in lengths.items():
                with m.Case(kind):
                    m.d.comb += [reply_len.eq(length_), reply_last.eq(length_ - 1)]

        def start_reply(kind):
            m.d.sync += [reply.eq(kind), tx_count.eq(0), tx_crc.eq(0)]
            m.next = "Reply-Sync"

        def fail(code, *, reset_engine=False):
            m.d.sync += error.eq(code.value)
            if reset_engine:
                m.d.sync += self.engine_reset.eq(1)
            start_reply(Reply.ERROR)

        def wait_or_fail(code, **kwargs):
            """A cycle without progress: count a tick down, or end the request at time-out."""
            with m.If(expired):
                fail(code, **kwargs)
            with m.Elif(self.tick):
                m.d.sync += timer.eq(timer - 1)

        m.d.sync += self.engine_reset.eq(0)       # a pulse (set below)
        with m.FSM():
            with m.State("Hunt"):
                m.d.comb += self.rx.ready.eq(1)
                m.d.sync += [crc.eq(0), uart_err.eq(0), timer.eq(self._timeout - 1), cmd.eq(0)]
                with m.If(self.rx.valid & self.rx.payload.overrun):
                    # Characters were lost while the link was busy: a frame went unanswered.
                    # Said once; the rest of that frame, still arriving, is dropped quietly.
                    with m.If(~lost):
                        m.d.sync += lost.eq(1)
                        fail(ErrorCode.OVERRUN)
                with m.Elif(self.rx.valid & ~self.rx.payload.error & (rx_byte == SYNC)):
                    m.next = "Command"

            for state, nxt in [("Command", "Length-Low"), ("Length-Low", "Length-High"),
                               ("Length-High", "Payload"), ("Payload", "Payload"),
                               ("Check", None)]:
                with m.State(state):
                    m.d.comb += self.rx.ready.eq(1)
                    with m.If(self.rx.valid):
                        m.d.sync += [timer.eq(self._timeout - 1), crc.eq(crc8_next(crc, rx_byte))]
                        with m.If(self.rx.payload.error | self.rx.payload.overrun):
                            m.d.sync += uart_err.eq(1)
                        if state == "Command":
                            m.d.sync += cmd.eq(rx_byte)
                            m.next = nxt
                        elif state == "Length-Low":
                            m.d.sync += length[:8].eq(rx_byte)
                            m.next = nxt
                        elif state == "Length-High":
                            m.d.sync += [length[8:].eq(rx_byte),
                                         length_m1.eq(Cat(length[:8], rx_byte) - 1)]
                            m.d.comb += count_next.eq(0)
                            with m.If(Cat(length[:8], rx_byte) == 0):
                                m.next = "Check"
                            with m.Elif(Cat(length[:8], rx_byte) > depth):
                                m.d.sync += length.eq(Cat(length[:8], rx_byte))
                                m.next = "Skip"
                            with m.Else():
                                m.next = "Payload"
                        elif state == "Payload":
                            m.d.comb += wr.en.eq(1)
                            m.d.comb += count_next.eq(count + 1)
                            with m.If(count == length_m1):
                                m.next = "Check"
                        else:  # Check: rx_byte is the CRC
                            m.d.comb += count_next.eq(0)
                            with m.If(uart_err):
                                fail(ErrorCode.UART)
                            with m.Elif(rx_byte != crc):
                                fail(ErrorCode.CHECKSUM)
                            with m.Else():
                                m.next = "Dispatch"
                    with m.Else():
                        wait_or_fail(ErrorCode.TIMEOUT)

            with m.State("Skip"):
                # Over-long payload: swallow it and its CRC (`length` + 1 bytes, counted down),
                # then report the length error.
                m.d.comb += self.rx.ready.eq(1)
                with m.If(self.rx.valid):
                    m.d.sync += [timer.eq(self._timeout - 1), length.eq(length - 1)]
                    with m.If(length == 0):
                        fail(ErrorCode.LENGTH)
                with m.Else():
                    wait_or_fail(ErrorCode.TIMEOUT)

            with m.State("Dispatch"):
                # `rd.data` is payload byte 0 here, and `count` is 0; a frame here fits the
                # buffer, so its length is `short`.
                m.d.sync += [end_ok.eq(1), lost.eq(0), seq_ack.eq(0)]
                with m.Switch(cmd):
                    with m.Case(Command.LOAD_BEGIN):
                        with m.If(short != 0):
                            fail(ErrorCode.LENGTH)
                        with m.Else():
                            m.d.sync += self.engine_reset.eq(1)
                            m.d.sync += [in_load.eq(1), loaded.eq(0), load_pos.eq(0),
                                         load_sum.eq(0), seq_expect.eq(0)]
                            start_reply(Reply.ACK)
                    with m.Case(Command.LOAD):
                        # The chunk's first byte is read whether or not the chunk is taken
                        # (a reply uses no buffer byte): the sequence bit's compare, from the
                        # buffer's read data, does not reach its address (an ECP5 critical
                        # path).
                        m.d.comb += count_next.eq(1)
                        with m.If(~in_load):
                            fail(ErrorCode.SEQUENCE)
                        with m.Elif(short == 0):
                            fail(ErrorCode.LENGTH)
                        with m.Elif(self.load_error):
                            fail(ErrorCode.RECORD)
                        with m.Else():
                            m.d.sync += seq_ack.eq(rd.data[0])
                            with m.If(rd.data[0] == seq_expect):
                                m.d.sync += timer.eq(self._timeout - 1)
                                m.next = "Load"
                            with m.Else():
                                start_reply(Reply.ACK)  # the previous chunk again: not twice
                    with m.Case(Command.LOAD_END):
                        with m.If(~in_load):
                            fail(ErrorCode.SEQUENCE)
                        with m.Elif(short != LOAD_END_BYTES):
                            fail(ErrorCode.LENGTH)
                        with m.Else():
                            m.next = "Load-End"
                    with m.Case(Command.CLASSIFY):
                        with m.If(short != self._image_bytes):
                            fail(ErrorCode.LENGTH)
                        with m.Elif(~loaded):
                            fail(ErrorCode.NO_MODEL)
                        with m.Else():
                            m.next = "Feed"
                    with m.Case(Command.INFO):
                        start_reply(Reply.INFO)
                    with m.Default():
                        fail(ErrorCode.COMMAND)

            with m.State("Load-End"):
                # Payload: the model id (taken), then length and sum (compared with the
                # board's own count and sum, a byte a cycle).
                m.d.comb += count_next.eq(count + 1)
                with m.If(count < MODEL_ID_BYTES):
                    m.d.sync += id_bytes.word_select(count[:2], 8).eq(rd.data)
                with m.Else():
                    mine = Cat(pos_bytes, load_sum).word_select((count - MODEL_ID_BYTES)[:3], 8)
                    m.d.sync += end_ok.eq(end_ok & (rd.data == mine))
                with m.If(count == LOAD_END_BYTES - 1):
                    m.next = "Load-Commit"

            with m.State("Load-Commit"):
                m.d.sync += in_load.eq(0)
                with m.If(end_ok & self.load_idle & ~self.load_error):
                    m.d.sync += loaded.eq(1)
                    start_reply(Reply.ACK)
                with m.Else():
                    fail(ErrorCode.MODEL)

            for state, port in [("Load", self.load), ("Feed", self.pixels)]:
                with m.State(state):
                    # `count` climbs from its start to `length` one step at a time, so equality
                    # is enough (and shorter than a magnitude comparison).
                    at_end = count == short
                    m.d.comb += port.valid.eq(~at_end)
                    with m.If(at_end):
                        if state == "Load":
                            with m.If(self.load_error):
                                fail(ErrorCode.RECORD)
                            with m.Else():
                                m.d.sync += seq_expect.eq(~seq_expect)
                                start_reply(Reply.ACK)
                        else:
                            m.d.sync += timer.eq(self._watchdog - 1)
                            m.next = "Result"
                    with m.Elif(port.ready):
                        m.d.comb += count_next.eq(count + 1)
                        m.d.sync += timer.eq(self._timeout - 1)
                        if state == "Load":
                            m.d.sync += [load_pos.eq(load_pos + 1),
                                         load_sum.eq(load_sum + rd.data)]
                    with m.Else():
                        if state == "Load":
                            with m.If(expired):
                                m.d.sync += [in_load.eq(0), loaded.eq(0)]
                        wait_or_fail(ErrorCode.TIMEOUT, reset_engine=True)

            with m.State("Result"):
                # The first word (a logit) starts the reply; the rest are taken as it is sent.
                m.d.comb += self.result.ready.eq(1)
                with m.If(self.result.valid):
                    m.d.sync += [word.eq(self.result.payload.data), word_left.eq(3),
                                 need_word.eq(0)]
                    start_reply(Reply.RESULT)
                with m.Else():
                    wait_or_fail(ErrorCode.TIMEOUT, reset_engine=True)

            header = [("Reply-Sync", Const(SYNC, 8), "Reply-Code", False),
                      ("Reply-Code", reply.as_value(), "Reply-Length-Low", True),
                      ("Reply-Length-Low", reply_len[:8], "Reply-Length-High", True),
                      ("Reply-Length-High", reply_len[8:], "Reply-Payload", True)]
            for state, byte, nxt, in_crc in header:
                with m.State(state):
                    m.d.comb += [self.tx.payload.eq(byte), self.tx.valid.eq(1)]
                    with m.If(self.tx.ready):
                        if in_crc:      # into the CRC a cycle later, as the payload's bytes
                            m.d.sync += [sent.eq(byte), sent_pending.eq(1)]
                        m.next = nxt
            with m.State("Reply-Payload"):
                # `need_word` is only ever set in a RESULT reply: the next result word is taken
                # (one beat of `result.ready`) before the byte after a finished word is offered.
                # `tx_count` is then the offset of that word's first byte. After the first word
                # the accelerator offers the others without waiting on anything but this link.
                m.d.comb += [self.tx.payload.eq(payload_byte), self.tx.valid.eq(~need_word),
                             self.result.ready.eq(need_word)]
                with m.If(need_word):
                    with m.If(self.result.valid):
                        m.d.sync += [word.eq(self.result.payload.data), need_word.eq(0),
                                     word_left.eq(Mux(tx_count == class_at, 0, 3))]
                with m.Elif(self.tx.ready):
                    m.d.sync += [sent.eq(payload_byte), sent_pending.eq(1),
                                 tx_count.eq(tx_count + 1),
                                 word.eq(word >> 8), word_left.eq(word_left - 1)]
                    with m.If(tx_count == reply_last):
                        m.next = "Reply-Check"
                    with m.Elif((reply == Reply.RESULT) & (word_left == 0)):
                        m.d.sync += need_word.eq(1)
            with m.State("Reply-Check"):
                m.d.comb += [self.tx.payload.eq(tx_crc), self.tx.valid.eq(~sent_pending)]
                with m.If(self.tx.ready):
                    m.next = "Hunt"
        return m
