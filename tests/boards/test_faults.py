"""Fault suite: the real board top (accelerator, loader, link, UART, behavioural SPRAM) in the
Amaranth simulator, driven through its UART pins by the production host driver and by raw
frames an adversarial host would send.

After every fault the board must answer, and the next valid ``CLASSIFY`` (after a reload where
the fault unloaded the model, as ``sdtforge run`` does) must be bit-exact with the golden model
within a bounded number of clock cycles. A request that gets no valid reply is a hang; the
suite counts faults and hangs, and there must be no hang.
"""

import dataclasses

import numpy as np
import pytest

from sdtforge.boards.host import BoardClient, BoardError
from sdtforge.boards.image import model_image
from sdtforge.boards.protocol import (
    SYNC,
    Command,
    ErrorCode,
    Reply,
    decode_frame,
    encode_frame,
    sum16,
)
from sdtforge.boards.simport import SimulatedPort
from sdtforge.boards.top import BoardTop
from sdtforge.hdl.accel_isa import Target
from sdtforge.hdl.compile import compile_model
from sdtforge.quantize.synthetic import random_model, tiny_config
from sdtforge.sim import golden

DIV = 4            # the smallest UART divisor
TIMEOUT = 2_000    # cycles of line silence inside a frame
WATCHDOG = 100_000  # cycles an inference may take (this model's take under 20 000)
MAX_PAYLOAD = 256


class _Bench:
    """One simulated board with a loaded model, its golden results and the fault counters."""

    def __init__(self, port, img, images, ref):
        self.port, self.img, self.images, self.ref = port, img, images, ref
        self.client = BoardClient(port, chunk=MAX_PAYLOAD)
        self.faults = 0
        self.hangs = 0
        self.bound = None   # cycles a clean CLASSIFY may take, set by the first one

    def reply(self):
        """The board's next reply as ``(code, payload)``; no reply in time is a hang."""
        try:
            return decode_frame(self.port.read)
        except Exception:
            self.hangs += 1
            raise

    def error(self, code, command):
        command = int(getattr(command, "value", command))
        assert self.reply() == (Reply.ERROR.value, bytes([code.value, command]))

    def classify_exact(self, i=0):
        """A valid CLASSIFY: bit-exact, within the bound; reloads first if the model is gone."""
        try:
            if not self.client.info().loaded:
                self.client.load_model(self.img)
            start = self.port.cycles
            r = self.client.classify(self.img.pixels(self.images[i]), self.img.num_classes)
        except BoardError as exc:
            if "no valid reply" in str(exc):
                self.hangs += 1
            raise
        took = self.port.cycles - start
        if self.bound is None:
            self.bound = 2 * took + 20 * 10 * DIV
        assert list(r.logits) == self.ref.logits[i].tolist()
        assert r.label == int(self.ref.classes[i])
        assert took <= self.bound, f"CLASSIFY took {took} cycles, bound {self.bound}"

    def fault(self, inject, *, check=True):
        """Inject one fault, then check that the board classifies exactly (``check``)."""
        self.faults += 1
        inject(self)
        if check:
            self.classify_exact(self.faults % len(self.images))


def _tiny():
    config = tiny_config(img_size=[4, 4], embed_dims=8, T=2, num_classes=3)
    model = random_model(config, seed=3, theta_max=4)
    compiled = compile_model(model, lanes=4, width=8)
    images = np.random.default_rng(3).integers(0, 256, (3, 1, 4, 4)).astype(np.uint8)
    return model, compiled, images


@pytest.fixture(scope="module")
def tiny():
    return _tiny()


def _run(tiny, faults, *, reload_each=True):
    model, compiled, images = tiny
    cfg = dataclasses.replace(compiled.config, external_weights=True)
    img = model_image(compiled)
    top = BoardTop(cfg, image_bytes=img.image_bytes, num_classes=img.num_classes, divisor=DIV,
                   timeout=TIMEOUT, watchdog=WATCHDOG, spram_weights=True,
                   max_payload=MAX_PAYLOAD, heartbeat_bit=4)
    ref = golden.run(model, images)
    with SimulatedPort(top, top.uart_rx, top.uart_tx, DIV,
                       timeout_cycles=2 * WATCHDOG) as port:
        bench = _Bench(port, img, images, ref)
        # A fresh board holds no model: CLASSIFY is refused at once (not left waiting).
        bench.faults += 1
        port.write(encode_frame(Command.CLASSIFY, img.pixels(images[0])))
        bench.error(ErrorCode.NO_MODEL, Command.CLASSIFY)
        if reload_each:
            bench.classify_exact()
        for inject in faults:
            # Without `reload_each`, the load faults follow one another and the board's
            # answers in between (NO_MODEL at once) are their check; one reload ends the run.
            bench.fault(inject, check=reload_each)
        bench.classify_exact()
        print(f"fault suite: {bench.faults} faults, {bench.hangs} hangs, "
              f"{port.cycles} cycles simulated")
        assert bench.hangs == 0
    return bench


# -- line and frame faults ----------------------------------------------------------------------

def _garbage(b):
    # Whatever the board makes of it (nothing, or error replies, which the host driver skips
    # as answers to no request of its own), it answers the next request.
    b.port.write(bytes(np.random.default_rng(1).integers(0, 256, 40, dtype=np.uint8)))


def _truncated(b):
    frame = encode_frame(Command.CLASSIFY, b.img.pixels(b.images[0]))
    b.port.write(frame[:7])
    b.error(ErrorCode.TIMEOUT, Command.CLASSIFY)


def _header_only(b):
    b.port.write(bytes([SYNC, Command.INFO.value]))
    b.error(ErrorCode.TIMEOUT, Command.INFO)


def _bad_checksum(b):
    frame = bytearray(encode_frame(Command.CLASSIFY, b.img.pixels(b.images[0])))
    frame[-1] ^= 0x5A
    b.port.write(frame)
    b.error(ErrorCode.CHECKSUM, Command.CLASSIFY)


def _wrong_length(b):
    b.port.write(encode_frame(Command.CLASSIFY, bytes(b.img.image_bytes - 1)))
    b.error(ErrorCode.LENGTH, Command.CLASSIFY)
    b.port.write(encode_frame(Command.LOAD_END, bytes(3)))
    b.error(ErrorCode.SEQUENCE, Command.LOAD_END)


def _oversize(b):
    b.port.write(encode_frame(Command.LOAD, bytes(MAX_PAYLOAD + 1)))
    b.error(ErrorCode.LENGTH, Command.LOAD)


def _unknown_command(b):
    b.port.write(encode_frame(0x7E, b"abc"))
    b.error(ErrorCode.COMMAND, 0x7E)


def _while_busy(b):
    # A second frame sent while the first CLASSIFY runs: the first is answered, the second's
    # loss is reported once.
    b.port.write(encode_frame(Command.CLASSIFY, b.img.pixels(b.images[0])))
    b.port.write(encode_frame(Command.INFO))
    code, body = b.reply()
    assert code == Reply.RESULT.value
    assert body[:4 * b.img.num_classes] == b"".join(
        int(v).to_bytes(4, "little", signed=True) for v in b.ref.logits[0])
    b.error(ErrorCode.OVERRUN, 0)


def _load_outside_transaction(b):
    b.port.write(encode_frame(Command.LOAD, bytes(8)))
    b.error(ErrorCode.SEQUENCE, Command.LOAD)


# -- load faults (each leaves the board without a model until it is reloaded) ------------------

def _begin(b):
    b.port.write(encode_frame(Command.LOAD_BEGIN))
    assert b.reply()[0] == Reply.ACK.value


def _no_model(b):
    b.port.write(encode_frame(Command.CLASSIFY, b.img.pixels(b.images[0])))
    b.error(ErrorCode.NO_MODEL, Command.CLASSIFY)
    assert not b.client.info().loaded


def _chunk(seq, data):
    return encode_frame(Command.LOAD, bytes([seq & 1]) + bytes(data))


def _cut_load(at):
    """Load the first ``at`` bytes of the model, the last frame cut in the middle."""
    def inject(b):
        _begin(b)
        step = MAX_PAYLOAD - 1
        whole = at // step * step
        for k, start in enumerate(range(0, whole, step)):
            b.port.write(_chunk(k, b.img.load[start:start + step]))
            assert b.reply() == (Reply.ACK.value, bytes([Command.LOAD.value, k & 1]))
        frame = _chunk(whole // step, b.img.load[whole:whole + step])
        b.port.write(frame[:5 + at - whole])
        b.error(ErrorCode.TIMEOUT, Command.LOAD)
        _no_model(b)
    inject.__name__ = f"_cut_load_{at}"
    return inject


def _end(b, length, crc):
    b.port.write(encode_frame(Command.LOAD_END, bytes(4) + length.to_bytes(4, "little")
                              + crc.to_bytes(2, "little")))


def _end_without_data(b):
    _begin(b)
    _end(b, len(b.img.load), b.img.sum16)
    b.error(ErrorCode.MODEL, Command.LOAD_END)
    _no_model(b)


def _wrong_sum(b):
    _begin(b)
    b.port.write(_chunk(0, b.img.load[:100]))
    assert b.reply() == (Reply.ACK.value, bytes([Command.LOAD.value, 0]))
    _end(b, 100, sum16(b.img.load[:100]) ^ 1)
    b.error(ErrorCode.MODEL, Command.LOAD_END)
    _no_model(b)


def _record(target, address, count):
    return (bytes([target]) + address.to_bytes(4, "little") + count.to_bytes(4, "little"))


def _bad_record(record):
    def inject(b):
        _begin(b)
        b.port.write(_chunk(0, record + bytes(20)))
        reply = b.reply()
        assert reply[0] in (Reply.ACK.value, Reply.ERROR.value)
        b.port.write(_chunk(1, bytes(8)))
        b.error(ErrorCode.RECORD, Command.LOAD)
        _end(b, len(record) + 28, 0)
        b.error(ErrorCode.MODEL, Command.LOAD_END)
        _no_model(b)
    return inject


def _wrong_sequence_bit(b):
    # A first chunk with bit 1 reads as a resend of a chunk before it: acknowledged, not
    # written, so the stream is short and LOAD_END refuses it.
    _begin(b)
    b.port.write(_chunk(1, b.img.load[:200]))
    assert b.reply() == (Reply.ACK.value, bytes([Command.LOAD.value, 1]))
    _end(b, 200, sum16(b.img.load[:200]))
    b.error(ErrorCode.MODEL, Command.LOAD_END)
    _no_model(b)


def _repeated_chunks(b):
    # Every chunk sent twice (as after lost ACKs): the board writes each once, and the model
    # passes its check.
    _begin(b)
    step = MAX_PAYLOAD - 1
    for k, start in enumerate(range(0, len(b.img.load), step)):
        for _ in range(2):
            b.port.write(_chunk(k, b.img.load[start:start + step]))
            assert b.reply() == (Reply.ACK.value, bytes([Command.LOAD.value, k & 1]))
    b.port.write(encode_frame(Command.LOAD_END, b.img.model_id
                              + len(b.img.load).to_bytes(4, "little")
                              + b.img.sum16.to_bytes(2, "little")))
    assert b.reply() == (Reply.ACK.value, bytes([Command.LOAD_END.value, 0]))
    assert b.client.info().model_id == b.img.model_id


def _other_configuration(b):
    # A model compiled for other lanes: the host refuses it before sending anything, and the
    # board keeps its model.
    model, _, _ = _tiny()
    other = model_image(compile_model(model, lanes=2, width=8))
    with pytest.raises(BoardError, match="compiled for hardware configuration"):
        b.client.load_model(other)
    assert b.client.info().loaded


# Each load fault ends by checking that CLASSIFY is refused with NO_MODEL at once.
LINE_FAULTS = [_garbage, _truncated, _header_only, _bad_checksum, _wrong_length, _oversize,
               _unknown_command, _while_busy, _load_outside_transaction, _other_configuration]
LOAD_FAULTS = [_end_without_data, _wrong_sequence_bit, _wrong_sum,
               _bad_record(_record(0xFFFF_FFFF & 0xFF, 0, 2**32 - 1)),
               _bad_record(_record(Target.WEIGHTS.value, 0, 2**32 - 1)),
               _bad_record(_record(Target.PROGRAM.value, 2**31, 1)),
               _bad_record(_record(Target.BIASES.value, 30, 5)),
               _bad_record(_record(0x37, 0, 1)),
               _cut_load(700), _repeated_chunks]


def test_line_faults(tiny):
    bench = _run(tiny, LINE_FAULTS)
    assert bench.faults == len(LINE_FAULTS) + 1


def test_load_faults(tiny):
    """Load faults back to back (each answered, the model refused), then one reload."""
    assert LOAD_FAULTS[-1] is _repeated_chunks    # a whole load: the model for the last check
    bench = _run(tiny, LOAD_FAULTS, reload_each=False)
    assert bench.faults == len(LOAD_FAULTS) + 1


@pytest.mark.slow
def test_load_faults_each_reloaded(tiny):
    """Every load fault followed by a reload and a bit-exact CLASSIFY."""
    bench = _run(tiny, LOAD_FAULTS)
    assert bench.faults == len(LOAD_FAULTS) + 1


@pytest.mark.slow
def test_load_cut_at_random_points(tiny):
    """Loads cut at random byte positions, each followed by a reload and an exact CLASSIFY."""
    n = len(model_image(tiny[1]).load)
    points = sorted(np.random.default_rng(11).choice(n, 2, replace=False).tolist())
    _run(tiny, [_cut_load(at) for at in points])
