"""The host driver against the simulated link gateware, through the UART pins.

A small stand-in accelerator (sums the load bytes, echoes pixel statistics as logits) stands
behind the link here; the accelerator itself is driven the same way in the board-top tests.
"""

import pytest
from amaranth import Module, Signal
from amaranth.lib import wiring

from spikeforge.boards.host import BoardClient, BoardError
from spikeforge.boards.link import HostLink
from spikeforge.boards.protocol import SYNC, Command, ErrorCode, Reply, decode_frame, encode_frame
from spikeforge.boards.simport import SimulatedPort
from spikeforge.boards.uart import UARTRx, UARTTx

DIV = 4
IMAGE = 6
CLASSES = 3
TIMEOUT = 400


class _Top(wiring.Component):
    def __init__(self):
        self.rx = Signal(init=1)
        self.tx = Signal(init=1)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.urx = urx = UARTRx(DIV)
        m.submodules.utx = utx = UARTTx(DIV)
        m.submodules.link = link = HostLink(image_bytes=IMAGE, num_classes=CLASSES,
                                            max_payload=16, timeout=TIMEOUT)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
        wiring.connect(m, urx.stream, link.rx)
        wiring.connect(m, link.tx, utx.stream)
        # Stand-in accelerator: load sum; logits = (pixel sum, load sum, count), class 1.
        load_sum, px_sum, px_n, out_i = Signal(32), Signal(32), Signal(8), Signal(3)
        m.d.comb += link.load.ready.eq(1)
        with m.If(link.load.valid):
            m.d.sync += load_sum.eq(load_sum + link.load.payload)
        m.d.comb += link.pixels.ready.eq(px_n < IMAGE)
        with m.If(link.pixels.valid & (px_n < IMAGE)):
            m.d.sync += [px_sum.eq(px_sum + link.pixels.payload), px_n.eq(px_n + 1)]
        words = [px_sum, load_sum, px_n, 1, 12345]
        with m.If(px_n == IMAGE):
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
        return m


@pytest.fixture
def board():
    top = _Top()
    with SimulatedPort(top, top.rx, top.tx, DIV, timeout_cycles=4 * TIMEOUT) as port:
        yield port, BoardClient(port, chunk=16)


def test_load_id_and_classify(board):
    port, client = board
    client.load(bytes(range(40)), model_id=b"\x01\x02\x03\x04\x05\x06\x07\x08")
    info = client.info()
    assert info.model_id == bytes(range(1, 9))
    assert (info.num_classes, info.image_bytes) == (CLASSES, IMAGE)
    for pixels in [bytes([1, 2, 3, 4, 5, 6]), bytes([255] * 6)]:
        result = client.classify(pixels, CLASSES)
        assert result.logits == (sum(pixels), sum(range(40)), IMAGE)
        assert (result.label, result.cycles) == (1, 12345)


def _reply(port):
    code, body = decode_frame(port.read)
    return code, body


def test_bad_checksum_then_recovers(board):
    port, client = board
    frame = bytearray(encode_frame(Command.CLASSIFY, bytes(IMAGE)))
    frame[-1] ^= 0xFF
    port.write(frame)
    assert _reply(port) == (Reply.ERROR.value, bytes([ErrorCode.CHECKSUM.value]))
    assert client.classify(bytes([7] * IMAGE), CLASSES).logits[0] == 42


def test_wrong_length_unknown_command_and_overlong(board):
    port, client = board
    with pytest.raises(BoardError, match="rejected CLASSIFY: LENGTH"):
        client.classify(bytes(IMAGE - 1), CLASSES)
    port.write(encode_frame(0x42, b"xy"))
    assert _reply(port) == (Reply.ERROR.value, bytes([ErrorCode.COMMAND.value]))
    port.write(encode_frame(Command.LOAD, bytes(40)))   # over the 16-byte frame buffer
    assert _reply(port) == (Reply.ERROR.value, bytes([ErrorCode.LENGTH.value]))
    assert client.info().image_bytes == IMAGE


def test_mid_frame_timeout_never_hangs(board):
    port, client = board
    port.write(bytes([SYNC, Command.CLASSIFY.value, IMAGE, 0, 1, 2]))  # cut off mid-payload
    assert _reply(port) == (Reply.ERROR.value, bytes([ErrorCode.TIMEOUT.value]))
    assert client.classify(bytes([1] * IMAGE), CLASSES).logits[0] == IMAGE


def test_link_parameters_checked():
    with pytest.raises(ValueError, match=r"num_classes must be at most 255, not 300"):
        HostLink(image_bytes=4, num_classes=300)
    with pytest.raises(ValueError, match=r"timeout must be an integer of at least 16, not 3"):
        HostLink(image_bytes=4, num_classes=2, timeout=3)
