"""The real board top (accelerator + host link + behavioural SPRAM) driven by the host driver.

The simulated UART port carries the production ``BoardClient`` frames to the simulated board,
so these tests take the path a real iCEBreaker takes, minus the PLL and the pins.
"""

import dataclasses

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from sdtforge.boards.host import BoardClient, BoardError
from sdtforge.boards.image import model_image
from sdtforge.boards.protocol import SYNC, Command, ErrorCode, Reply, decode_frame, encode_frame
from sdtforge.boards.simport import SimulatedPort
from sdtforge.boards.top import BoardTop
from sdtforge.hdl.compile import compile_model
from sdtforge.hdl.result import RESULT_LAYOUT
from sdtforge.quantize.synthetic import random_model, tiny_config
from sdtforge.sim import golden

DIV = 4          # the smallest UART divisor: the simulator spends most cycles on the line
TIMEOUT = 2_000  # cycles of silence inside a frame
WATCHDOG = 200_000  # cycles an inference may take (the small model's take under 20 000)


def _board(compiled):
    cfg = dataclasses.replace(compiled.config, external_weights=True)
    img = model_image(compiled)
    top = BoardTop(cfg, image_bytes=img.image_bytes, num_classes=img.num_classes, divisor=DIV,
                   timeout=TIMEOUT, watchdog=WATCHDOG, spram_weights=True, heartbeat_bit=4)
    return top, img


def _session(model, compiled, images):
    """Load, check the id, classify ``images``, then malformed and cut-off frames."""
    top, img = _board(compiled)
    ref = golden.run(model, images)
    # The accelerator's own work must not look like line silence to the host's reads.
    with SimulatedPort(top, top.uart_rx, top.uart_tx, DIV,
                       timeout_cycles=2_000_000) as port:
        client = BoardClient(port)
        assert client.info().model_id == bytes(4)
        assert not client.info().loaded
        client.load_model(img)
        info = client.info()
        assert (info.model_id, info.num_classes, info.image_bytes, info.loaded) == (
            img.model_id, img.num_classes, img.image_bytes, True)
        for i, image in enumerate(images):
            result = client.classify(img.pixels(image), img.num_classes)
            assert list(result.logits) == ref.logits[i].tolist()
            assert result.label == int(ref.classes[i])
            assert result.cycles > 0

        # A corrupted frame is rejected whole, with the accelerator behind the link untouched.
        frame = bytearray(encode_frame(Command.CLASSIFY, img.pixels(images[0])))
        frame[5] ^= 0x40
        port.write(frame)
        assert decode_frame(port.read) == (
            Reply.ERROR.value, bytes([ErrorCode.CHECKSUM.value, Command.CLASSIFY.value]))
        # A frame cut off mid-payload times out instead of hanging the board.
        port.write(bytes([SYNC, Command.CLASSIFY.value, img.image_bytes & 0xFF,
                          img.image_bytes >> 8, 1, 2, 3]))
        assert decode_frame(port.read) == (
            Reply.ERROR.value, bytes([ErrorCode.TIMEOUT.value, Command.CLASSIFY.value]))
        with pytest.raises(BoardError, match="rejected CLASSIFY: LENGTH"):
            client.classify(bytes(img.image_bytes - 1), img.num_classes)
        # ... and the board still classifies correctly afterwards.
        result = client.classify(img.pixels(images[-1]), img.num_classes)
        assert list(result.logits) == ref.logits[-1].tolist()


@pytest.mark.parametrize("bits,events", [(8, 1), (4, 2)])
def test_small_model_through_the_uart(bits, events):
    """With two events per command (4-bit weights, as the iCEBreaker builds them) the SPRAM
    holds two copies of the rows and the engine reads both per cycle."""
    config = tiny_config(img_size=[4, 4], embed_dims=8, T=2, num_classes=3, weight_bits=bits)
    model = random_model(config, seed=3, theta_max=4)
    compiled = compile_model(model, lanes=4, width=8, events=events)
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (2, 1, 4, 4)).astype(np.uint8)
    _session(model, compiled, images)


class _SlowLoader(wiring.Component):
    """The accelerator's ports around a loader that takes a load byte only while ``takes``
    and says it is idle all the while (as a loader between records is)."""

    def __init__(self, takes):
        self._takes = takes
        super().__init__({
            "load": In(stream.Signature(8)), "pixels": In(stream.Signature(8)),
            "result": Out(stream.Signature(RESULT_LAYOUT)), "busy": Out(1),
            "load_idle": Out(1), "load_error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.load.ready.eq(self._takes), self.load_idle.eq(1)]
        return m


@pytest.mark.parametrize("takes", [True, False])
def test_a_load_passes_only_once_its_bytes_reach_the_loader(takes):
    """The load bytes cross a queue to the engine: ``LOAD_END`` passes only once the queue
    has given them all to the loader, not while the last of them still wait in it."""
    config = tiny_config(img_size=[4, 4], embed_dims=8, T=2, num_classes=3)
    compiled = compile_model(random_model(config, seed=3, theta_max=4), lanes=4, width=8)
    img = model_image(compiled)
    top = BoardTop(compiled.config, image_bytes=img.image_bytes, num_classes=img.num_classes,
                   divisor=DIV, timeout=TIMEOUT, watchdog=WATCHDOG, heartbeat_bit=4,
                   accelerator=_SlowLoader(takes))
    with SimulatedPort(top, top.uart_rx, top.uart_tx, DIV, timeout_cycles=200_000) as port:
        client = BoardClient(port)
        if takes:
            client.load(b"\x2a", img.model_id)
            assert client.info().loaded
        else:
            # One byte waits in the queue (the loader takes none), so the chunk itself is
            # answered; the transaction's end is refused.
            with pytest.raises(BoardError, match="MODEL"):
                client.load(b"\x2a", img.model_id)
            assert not client.info().loaded
