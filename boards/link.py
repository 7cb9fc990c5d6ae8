"""Gateware side of the host link: frames in from the UART, streams to the accelerator.

A whole frame is buffered and its checksum checked before anything reaches the accelerator, so
a corrupt or truncated frame never half-loads a model or half-feeds an image; every frame gets
exactly one reply frame (see :mod:`sdtforge.boards.protocol`), and a gap longer than
``timeout`` cycles inside a frame ends it with an ``ERROR`` reply — the board never hangs.

Results are not buffered: the ``RESULT`` reply (whose length is known in advance) starts as soon
as the accelerator offers its first result word, and its payload is sent straight from the
``result`` stream, one word held at a time, the next word taken only when the previous one's bytes
are out (the accelerator holds a word while it is not taken).
"""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .protocol import MODEL_ID_BYTES, SYNC, Command, ErrorCode, Reply
from .uart import RxPayload

__all__ = ["HostLink", "ResultPayload", "crc8_next"]

ResultPayload = data.StructLayout({"data": 32, "last": 1})


def _crc8_table():
    """Which bits of ``crc ^ byte`` each next-CRC bit is the XOR of (CRC is linear)."""
    from .protocol import crc8
    return [[i for i in range(8) if (crc8(bytes([1 << i])) >> j) & 1] for j in range(8)]


_CRC8_TAPS = _crc8_table()


def crc8_next(crc, byte):
    """One CRC-8/SMBUS byte step as combinational logic: eight XOR trees."""
    x = crc ^ byte
    return Cat(*(_xor_bits(x, taps) for taps in _CRC8_TAPS))


def _xor_bits(x, taps):
    out = x[taps[0]]
    for i in taps[1:]:
        out = out ^ x[i]
    return out


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
        Clock cycles of silence inside a frame after which it is dropped.

    Members
    -------
    rx : In(stream.Signature(RxPayload))
        Characters from :class:`~sdtforge.boards.uart.UARTRx`.
    tx : Out(stream.Signature(8))
        Characters to :class:`~sdtforge.boards.uart.UARTTx`.
    load : Out(stream.Signature(8))
        The accelerator's model-load byte stream.
    pixels : Out(stream.Signature(8))
        The accelerator's pixel stream.
    result : In(stream.Signature(ResultPayload))
        The accelerator's result words: ``num_classes`` logits, the class, the cycle count
        (``last``). They are streamed into the ``RESULT`` reply as the UART sends it (the link
        counts the words, so ``num_classes`` must be the accelerator's); a word is taken only
        once the previous one is sent, so the stream sees back-pressure.
    model_id : Out(8 * MODEL_ID_BYTES)
        The id set by ``SET_ID`` (shown on LEDs or reported by ``INFO``).
    """

    def __init__(self, *, image_bytes, num_classes, max_payload=256, timeout=1_000_000):
        for name, value, low in [("image_bytes", image_bytes, 1), ("num_classes", num_classes, 1),
                                 ("max_payload", max_payload, 8), ("timeout", timeout, 16)]:
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer of at least {low}, not {value!r}")
        if num_classes > 255:
            raise ValueError(f"num_classes must be at most 255, not {num_classes!r}")
        self._image_bytes = image_bytes
        self._num_classes = num_classes
        self._max_payload = max(max_payload, image_bytes, MODEL_ID_BYTES)
        self._timeout = timeout
        super().__init__({
            "rx": In(stream.Signature(RxPayload)),
            "tx": Out(stream.Signature(8)),
            "load": Out(stream.Signature(8)),
            "pixels": Out(stream.Signature(8)),
            "result": In(stream.Signature(ResultPayload)),
            "model_id": Out(8 * MODEL_ID_BYTES),
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
        # `length - 1`, registered with `length`: the "last payload byte" test is then an
        # equality, not an adder and a comparator in series (the link's critical path on iCE40).
        length_m1 = Signal(16)
        count = Signal(16)
        count_next = Signal(16)
        crc = Signal(8)
        uart_err = Signal()
        # Counts down from `timeout - 1` and expires when it goes negative: the test is then the
        # sign bit, not a wide comparison with zero on every receive state's path.
        timer = Signal((self._timeout - 1).bit_length() + 1)
        expired = timer[-1]
        error = Signal(ErrorCode, init=ErrorCode.CHECKSUM)

        # Reply being sent: header, then a payload produced by `payload_byte`, then the CRC.
        reply = Signal(Reply, init=Reply.ACK)
        tx_crc = Signal(8)
        tx_count = Signal(16)
        payload_byte = Signal(8)
        # The CRC takes each sent payload byte one cycle later: the byte multiplexer and the
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
        n_result = self._num_classes * 4 + 1 + 4
        class_at = self._num_classes * 4   # payload offset of the class byte
        word = Signal(32)
        word_left = Signal(2)
        need_word = Signal()
        id_bytes = Signal(8 * MODEL_ID_BYTES)
        m.d.comb += self.model_id.eq(id_bytes)

        rx_byte = self.rx.payload.data
        m.d.comb += [count_next.eq(count), rd.addr.eq(count_next), wr.addr.eq(count),
                     wr.data.eq(rx_byte)]
        m.d.sync += count.eq(count_next)

        # Payload byte k of each reply kind.
        with m.Switch(reply):
            with m.Case(Reply.ERROR):
                m.d.comb += payload_byte.eq(error.as_value())
            with m.Case(Reply.INFO):
                info = Cat(id_bytes, Const(self._num_classes, 8), Const(self._image_bytes, 16))
                m.d.comb += payload_byte.eq(info.word_select(tx_count[:4], 8))
            with m.Case(Reply.RESULT):
                # Logits (LE), the class byte, the cycle count (LE), from the held word.
                m.d.comb += payload_byte.eq(word[:8])

        # Each reply kind has a fixed payload length, so the length is decoded from `reply`
        # (no length register written from every state that starts a reply: its enable was
        # the link's critical path on iCE40). `reply_last` is the length - 1, so the end test
        # is an equality.
        lengths = {Reply.ACK: 0, Reply.ERROR: 1, Reply.INFO: MODEL_ID_BYTES + 3,
                   Reply.RESULT: n_result}
        reply_len = Signal(16)
        reply_last = Signal(16)
        with m.Switch(reply):
            for kind, length_ in lengths.items():
                with m.Case(kind):
                    m.d.comb += [reply_len.eq(length_), reply_last.eq(max(length_ - 1, 0))]

        def start_reply(kind):
            m.d.sync += [reply.eq(kind), tx_count.eq(0), tx_crc.eq(0)]
            m.next = "Reply-Sync"

        def fail(code):
            m.d.sync += error.eq(code)
            start_reply(Reply.ERROR)

        with m.FSM():
            with m.State("Hunt"):
                m.d.comb += self.rx.ready.eq(1)
                m.d.sync += [crc.eq(0), uart_err.eq(0), timer.eq(self._timeout - 1)]
                with m.If(self.rx.valid & ~self.rx.payload.error & (rx_byte == SYNC)):
                    m.next = "Command"

            for state, nxt in [("Command", "Length-Low"), ("Length-Low", "Length-High"),
                               ("Length-High", "Payload"), ("Payload", "Payload"),
                               ("Check", None)]:
                with m.State(state):
                    m.d.comb += self.rx.ready.eq(1)
                    with m.If(self.rx.valid):
                        m.d.sync += [timer.eq(self._timeout - 1), crc.eq(crc8_next(crc, rx_byte))]
                        with m.If(self.rx.payload.error):
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
                    with m.Elif(expired):
                        fail(ErrorCode.TIMEOUT)
                    with m.Else():
                        m.d.sync += timer.eq(timer - 1)

            with m.State("Skip"):
                # Over-long payload: swallow it and its CRC, then report the length error.
                m.d.comb += self.rx.ready.eq(1)
                with m.If(self.rx.valid):
                    m.d.sync += timer.eq(self._timeout - 1)
                    m.d.comb += count_next.eq(count + 1)
                    with m.If(count == length):
                        fail(ErrorCode.LENGTH)
                with m.Elif(expired):
                    fail(ErrorCode.TIMEOUT)
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)

            with m.State("Dispatch"):
                with m.Switch(cmd):
                    with m.Case(Command.LOAD):
                        m.next = "Load"
                    with m.Case(Command.CLASSIFY):
                        with m.If(length == self._image_bytes):
                            m.next = "Feed"
                        with m.Else():
                            fail(ErrorCode.LENGTH)
                    with m.Case(Command.INFO):
                        start_reply(Reply.INFO)
                    with m.Case(Command.SET_ID):
                        with m.If(length == MODEL_ID_BYTES):
                            m.next = "Set-Id"
                        with m.Else():
                            fail(ErrorCode.LENGTH)
                    with m.Default():
                        fail(ErrorCode.COMMAND)

            with m.State("Set-Id"):
                m.d.sync += id_bytes.word_select(count[:3], 8).eq(rd.data)
                m.d.comb += count_next.eq(count + 1)
                with m.If(count == MODEL_ID_BYTES - 1):
                    start_reply(Reply.ACK)

            for state, port in [("Load", self.load), ("Feed", self.pixels)]:
                with m.State(state):
                    # `count` climbs from 0 to `length` one step at a time, so equality
                    # is enough (and shorter than a magnitude comparison).
                    at_end = count == length
                    m.d.comb += [port.payload.eq(rd.data), port.valid.eq(~at_end)]
                    with m.If(at_end):
                        if state == "Load":
                            start_reply(Reply.ACK)
                        else:
                            m.next = "Result"
                    with m.Elif(port.ready):
                        m.d.comb += count_next.eq(count + 1)

            with m.State("Result"):
                # The first word (a logit) starts the reply; the rest are taken as it is sent.
                m.d.comb += self.result.ready.eq(1)
                with m.If(self.result.valid):
                    m.d.sync += [word.eq(self.result.payload.data), word_left.eq(3),
                                 need_word.eq(0)]
                    start_reply(Reply.RESULT)

            header = [("Reply-Sync", Const(SYNC, 8), "Reply-Code", False),
                      ("Reply-Code", reply.as_value(), "Reply-Length-Low", True),
                      ("Reply-Length-Low", reply_len[:8], "Reply-Length-High", True),
                      ("Reply-Length-High", reply_len[8:], None, True)]
            for state, byte, nxt, in_crc in header:
                with m.State(state):
                    m.d.comb += [self.tx.payload.eq(byte), self.tx.valid.eq(1)]
                    with m.If(self.tx.ready):
                        if in_crc:
                            m.d.sync += tx_crc.eq(crc8_next(tx_crc, byte))
                        if nxt is None:
                            with m.If(reply_len == 0):
                                m.next = "Reply-Check"
                            with m.Else():
                                m.next = "Reply-Payload"
                        else:
                            m.next = nxt
            with m.State("Reply-Payload"):
                # `need_word` is only ever set in a RESULT reply: the next result word is taken
                # (one beat of `result.ready`) before the byte after a finished word is offered.
                # `tx_count` is then the offset of that word's first byte.
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
