"""The host driver against the simulated link gateware, through the UART pins.

A small stand-in accelerator (sums the load bytes, echoes pixel statistics as logits) stands
behind the link here; the accelerator itself is driven the same way in the board-top tests.
The stand-in can also stall its result stream at random (a word offered late, and held until it
is taken), as the real one does while its result words are read out; an image whose first pixel
is ``HANG`` makes it hang until the link resets it (``engine_reset`` clears its state, as it
resets the real engine).
"""

import pytest
from amaranth import Cat, Module, Signal
from amaranth.lib import wiring

from sdtforge.boards.host import BoardClient, BoardError
from sdtforge.boards.link import HostLink
from sdtforge.boards.protocol import SYNC, Command, ErrorCode, Reply, decode_frame, encode_frame
from sdtforge.boards.simport import SimulatedPort
from sdtforge.boards.uart import UARTRx, UARTTx

DIV = 4
IMAGE = 6
CLASSES = 3
TIMEOUT = 400
WATCHDOG = 3_000
HANG = 0xEE
LOAD = bytes(range(40))
LOAD_ID = bytes(range(1, 5))


# Result words of the stalling stand-in: negative logits (pixel sum - 1000, ~load sum, -count),
# class 2, a cycle count with its top bit set.
_STALL_CLASS, _STALL_CYCLES = 2, 0x89ABCDEF


def _stall_result(pixels, load):
    return (sum(pixels) - 1000, ~sum(load), -len(pixels)), _STALL_CLASS, _STALL_CYCLES


class _Top(wiring.Component):
    def __init__(self, stall=False):
        self.rx = Signal(init=1)
        self.tx = Signal(init=1)
        self._stall = stall
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.urx = urx = UARTRx(DIV)
        m.submodules.utx = utx = UARTTx(DIV)
        m.submodules.link = link = HostLink(image_bytes=IMAGE, num_classes=CLASSES,
                                            max_payload=16, timeout=TIMEOUT, watchdog=WATCHDOG,
                                            digest=b"\x12\x34\x56\x78", position_bits=12)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
        wiring.connect(m, urx.stream, link.rx)
        wiring.connect(m, link.tx, utx.stream)
        # Stand-in accelerator: load sum; logits = (pixel sum, load sum, count), class 1.
        load_sum, px_sum, px_n, out_i = Signal(32), Signal(32), Signal(8), Signal(3)
        hang = Signal()
        m.d.comb += [link.load.ready.eq(1), link.load_idle.eq(1)]
        with m.If(link.load.valid):
            m.d.sync += load_sum.eq(load_sum + link.load.payload)
        m.d.comb += link.pixels.ready.eq(px_n < IMAGE)
        with m.If(link.pixels.valid & (px_n < IMAGE)):
            m.d.sync += [px_sum.eq(px_sum + link.pixels.payload), px_n.eq(px_n + 1)]
            with m.If((px_n == 0) & (link.pixels.payload == HANG)):
                m.d.sync += hang.eq(1)
        if not self._stall:
            words = [px_sum, load_sum, px_n, 1, 12345]
            offer = 1
        else:
            words = [px_sum - 1000, ~load_sum, -px_n, _STALL_CLASS, _STALL_CYCLES]
            # A word is offered when a 16-bit LFSR says so, then held until it is taken.
            lfsr, held = Signal(16, init=0xACE1), Signal()
            m.d.sync += lfsr.eq(Cat(lfsr[1:], lfsr[0] ^ lfsr[2] ^ lfsr[3] ^ lfsr[5]))
            offer = held | (lfsr[:2] == 0)
            with m.If(link.result.valid):
                m.d.sync += held.eq(~link.result.ready)
        with m.If((px_n == IMAGE) & offer & ~hang):
            m.d.comb += link.result.valid.eq(1)
            with m.Switch(out_i):
                for i, w in enumerate(words):
                    with m.Case(i):
                        m.d.comb += [link.result.payload.data.eq(w),
                                     link.result.payload.last.eq(i == len(words) - 1)]
            with m.If(link.result.ready):
                m.d.sync += out_i.eq(out_i + 1)
                with m.If(out_i == len(words) - 1):
                    m.d.sync += [out_i.eq(0), px_n.eq(0), px_sum.eq(0)]
        with m.If(link.engine_reset):
            m.d.sync += [load_sum.eq(0), px_sum.eq(0), px_n.eq(0), out_i.eq(0), hang.eq(0)]
        return m


@pytest.fixture(params=[False, True], ids=["steady", "stalling"])
def stalling(request):
    return request.param


@pytest.fixture
def board(stalling):
    top = _Top(stall=stalling)
    with SimulatedPort(top, top.rx, top.tx, DIV, timeout_cycles=4 * WATCHDOG) as port:
        client = BoardClient(port, chunk=16)
        client.load(LOAD, LOAD_ID)
        yield port, client


def test_load_id_and_classify(board, stalling):
    port, client = board
    info = client.info()
    assert (info.model_id, info.loaded, info.config_digest) == (LOAD_ID, True, b"\x12\x34\x56\x78")
    assert (info.num_classes, info.image_bytes) == (CLASSES, IMAGE)
    for pixels in [bytes([1, 2, 3, 4, 5, 6]), bytes([255] * 6)]:
        result = client.classify(pixels, CLASSES)
        if stalling:
            logits, label, cycles = _stall_result(pixels, LOAD)
        else:
            logits, label, cycles = (sum(pixels), sum(LOAD), IMAGE), 1, 12345
        assert (result.logits, result.label, result.cycles) == (logits, label, cycles)


def test_result_frame_bytes():
    """A RESULT reply streamed from a stalling result stream is the protocol's frame exactly."""
    top = _Top(stall=True)
    load = bytes([200, 100, 7])
    with SimulatedPort(top, top.rx, top.tx, DIV, timeout_cycles=4 * WATCHDOG) as port:
        BoardClient(port, chunk=16).load(load, b"id")
        for pixels in [bytes([1, 2, 3, 4, 5, 6]), bytes([255] * 6), bytes(6)]:
            logits, label, cycles = _stall_result(pixels, load)
            payload = b"".join(v.to_bytes(4, "little", signed=True) for v in logits)
            payload += bytes([label]) + cycles.to_bytes(4, "little")
            expected = encode_frame(Reply.RESULT, payload)
            assert len(expected) == 4 + 4 * CLASSES + 5 + 1
            port.write(encode_frame(Command.CLASSIFY, pixels))
            assert port.read(len(expected)) == expected
            assert port.read(1) == b""  # nothing after the frame


def _reply(port):
    code, body = decode_frame(port.read)
    return code, body


def _error(code, command):
    """The ERROR reply to ``command`` (a number, 0 when the board cannot know it)."""
    return Reply.ERROR.value, bytes([code.value, int(getattr(command, "value", command))])


def test_bad_checksum_then_recovers(board, stalling):
    port, client = board
    frame = bytearray(encode_frame(Command.CLASSIFY, bytes(IMAGE)))
    frame[-1] ^= 0xFF
    port.write(frame)
    assert _reply(port) == _error(ErrorCode.CHECKSUM, Command.CLASSIFY)
    assert client.classify(bytes([7] * IMAGE), CLASSES).logits[0] == 42 - 1000 * stalling


def test_wrong_length_unknown_command_and_overlong(board):
    port, client = board
    with pytest.raises(BoardError, match="rejected CLASSIFY: LENGTH"):
        client.classify(bytes(IMAGE - 1), CLASSES)
    port.write(encode_frame(0x42, b"xy"))
    assert _reply(port) == _error(ErrorCode.COMMAND, 0x42)
    port.write(encode_frame(Command.LOAD, bytes(40)))   # over the 16-byte frame buffer
    assert _reply(port) == _error(ErrorCode.LENGTH, Command.LOAD)
    assert client.info().image_bytes == IMAGE


def test_mid_frame_timeout_never_hangs(board, stalling):
    port, client = board
    port.write(bytes([SYNC, Command.CLASSIFY.value, IMAGE, 0, 1, 2]))  # cut off mid-payload
    assert _reply(port) == _error(ErrorCode.TIMEOUT, Command.CLASSIFY)
    assert client.classify(bytes([1] * IMAGE), CLASSES).logits[0] == IMAGE - 1000 * stalling


def test_link_parameters_checked():
    with pytest.raises(ValueError, match=r"num_classes must be at most 255, not 300"):
        HostLink(image_bytes=4, num_classes=300)
    with pytest.raises(ValueError, match=r"timeout must be an integer of at least 16, not 3"):
        HostLink(image_bytes=4, num_classes=2, timeout=3)


def test_classify_needs_a_complete_load(board):
    port, client = board
    port.write(encode_frame(Command.LOAD_BEGIN))
    assert _reply(port) == (Reply.ACK.value, bytes([Command.LOAD_BEGIN.value, 0]))
    assert not client.info().loaded and client.info().model_id == bytes(4)
    port.write(encode_frame(Command.CLASSIFY, bytes(IMAGE)))
    assert _reply(port) == _error(ErrorCode.NO_MODEL, Command.CLASSIFY)
    # A stream one byte short of what LOAD_END claims does not count as loaded.
    port.write(encode_frame(Command.LOAD, bytes([0]) + LOAD[:10]))
    assert _reply(port) == (Reply.ACK.value, bytes([Command.LOAD.value, 0]))
    port.write(encode_frame(Command.LOAD_END, LOAD_ID + (11).to_bytes(4, "little")
                            + sum(LOAD[:10]).to_bytes(2, "little")))
    assert _reply(port) == _error(ErrorCode.MODEL, Command.LOAD_END)
    assert not client.info().loaded
    port.write(encode_frame(Command.LOAD, bytes([0]) + LOAD[:10]))
    assert _reply(port) == _error(ErrorCode.SEQUENCE, Command.LOAD)
    client.load(LOAD, LOAD_ID)
    assert client.info().loaded


def test_watchdog_resets_a_hung_engine(board, stalling):
    """An image the stand-in hangs on is answered TIMEOUT, and the reset engine works again."""
    port, client = board
    port.write(encode_frame(Command.CLASSIFY, bytes([HANG] + [1] * (IMAGE - 1))))
    assert _reply(port) == _error(ErrorCode.TIMEOUT, Command.CLASSIFY)
    # The reset cleared the stand-in's load sum, as it clears the real engine's registers.
    client.load(LOAD, LOAD_ID)
    result = client.classify(bytes([2] * IMAGE), CLASSES)
    assert result.logits[0] == 2 * IMAGE - 1000 * stalling


def test_host_gives_up_on_a_chattering_line():
    """A line that never stops sending non-sync bytes cannot hold the host driver."""
    class Chatter:
        def write(self, data):
            return len(data)

        def read(self, n=1):
            return bytes([0x55]) * n

    client = BoardClient(Chatter(), retries=1)
    with pytest.raises(BoardError, match="no valid reply from the board to INFO"):
        client.info()


def test_host_skips_a_late_reply():
    """A RESULT left over from an earlier request is not taken as the answer to INFO."""
    from sdtforge.boards.protocol import INFO_BYTES

    info = bytes(range(1, 5)) + bytes([CLASSES]) + IMAGE.to_bytes(2, "little") + bytes([1])
    info += b"\x12\x34\x56\x78"
    assert len(info) == INFO_BYTES

    class Late:
        def __init__(self):
            self.out = bytearray(encode_frame(Reply.RESULT, bytes(4 * CLASSES + 5)))

        def write(self, data):
            if data == encode_frame(Command.INFO):
                self.out += encode_frame(Reply.INFO, info)
            return len(data)

        def read(self, n=1):
            out, self.out[:n] = bytes(self.out[:n]), b""
            return out

    got = BoardClient(Late()).info()
    assert (got.model_id, got.loaded, got.config_digest) == (bytes(range(1, 5)), True,
                                                             b"\x12\x34\x56\x78")


def test_info_before_any_load():
    """An unloaded board reports its sizes and digest, and a zero id."""
    top = _Top()
    with SimulatedPort(top, top.rx, top.tx, DIV, timeout_cycles=4 * WATCHDOG) as port:
        info = BoardClient(port, chunk=16).info()
    assert (info.model_id, info.loaded, info.num_classes, info.image_bytes,
            info.config_digest) == (bytes(4), False, CLASSES, IMAGE, b"\x12\x34\x56\x78")
