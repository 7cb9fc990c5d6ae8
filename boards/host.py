"""Host driver of the board link: load a model image, read the board's state, classify images.

Works over anything with pyserial's ``read(n)``/``write(data)`` — a real ``serial.Serial`` or
the simulated UART of the tests, so the tests take the same path as a real board.

Every request is sent on a flushed line and waits for its own reply under one deadline:
replies left over from an earlier request (a late ``RESULT`` after a host timeout, say) are
recognised by their kind and the command they name, and skipped. A request that got no valid
reply, or an error that says nothing about the request (checksum, UART, overrun, timeout), is
sent again, up to ``retries`` times; every request is safe to repeat (a ``LOAD`` chunk carries
an alternating sequence bit, and the board acknowledges a chunk it already holds without
writing it again).
"""

import time
from dataclasses import dataclass

from sdtforge.errors import UserError
from sdtforge.hdl.result import Result, decode_result, result_class_word, result_words

from .protocol import (
    MODEL_ID_BYTES,
    TRANSIENT_ERRORS,
    Command,
    ErrorCode,
    FrameError,
    Reply,
    decode_frame,
    encode_frame,
    sum16,
)

__all__ = ["BoardClient", "BoardError", "ClassifyResult", "BoardInfo"]

#: Replies from earlier requests a request skips before it gives up on the line.
_MAX_STALE = 16


class BoardError(UserError):
    """The board answered with an error frame, or not at all."""


#: What :meth:`BoardClient.classify` returns: the accelerator's result (logits, label, cycles).
ClassifyResult = Result


@dataclass(frozen=True)
class BoardInfo:
    """What ``INFO`` reports.

    Attributes
    ----------
    model_id : bytes
        The loaded model's id (zeros unless ``loaded``).
    num_classes, image_bytes : int
        The bitstream's result and image sizes.
    loaded : bool
        A model load passed its whole-model check.
    config_digest : bytes
        :func:`~sdtforge.boards.image.config_digest` of the bitstream's configuration.
    """

    model_id: bytes
    num_classes: int
    image_bytes: int
    loaded: bool
    config_digest: bytes


def _error_name(code):
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"code 0x{code:02x}"


class BoardClient:
    """Request/response client of :class:`~sdtforge.boards.link.HostLink`.

    Parameters
    ----------
    port : object
        Has ``read(n) -> bytes`` (short on timeout) and ``write(data)``; its
        ``reset_input_buffer()`` (pyserial) is called before each request where it exists.
    chunk : int
        Largest frame payload; must not exceed the board's frame buffer. A ``LOAD`` frame
        carries a sequence byte and ``chunk - 1`` bytes of the load stream.
    retries : int
        How many times a request is sent again after a transient failure.
    deadline_s : float
        Seconds one request (all its tries) may take, by ``clock``.
    clock : callable, optional
        Seconds now; by default the port's ``clock`` where it has one (a simulated port's time),
        else :func:`time.monotonic`.
    """

    def __init__(self, port, *, chunk=256, retries=3, deadline_s=10.0, clock=None):
        if not isinstance(chunk, int) or chunk < 8:
            raise ValueError(f"chunk must be an integer of at least 8, not {chunk!r}")
        self.port = port
        self.chunk = chunk
        self.retries = retries
        self.deadline_s = deadline_s
        self.clock = clock or getattr(port, "clock", time.monotonic)

    def _exchange(self, command, payload, expect, deadline):
        """Send once; return ``(code, body)`` of the reply to this request."""
        flush = getattr(self.port, "reset_input_buffer", None)
        if flush is not None:
            flush()
        self.port.write(encode_frame(command, payload))
        # An ACK names the command it answers and, for a LOAD, the chunk's sequence bit.
        ack = bytes([command.value, payload[0] & 1 if command == Command.LOAD else 0])

        def read(n):
            return self.port.read(n) if self.clock() < deadline else b""

        for _ in range(_MAX_STALE):
            code, body = decode_frame(read)
            if code == Reply.ERROR.value and len(body) == 2 and body[1] in (0, command.value):
                return code, body
            if code == expect.value and (expect != Reply.ACK or body == ack):
                return code, body
            # A reply to an earlier request: skip it.
        raise FrameError(f"{_MAX_STALE} replies to other requests")

    def _request(self, command, payload=b"", expect=Reply.ACK):
        deadline = self.clock() + self.deadline_s
        problem = None
        for _ in range(self.retries + 1):
            if self.clock() >= deadline:
                break
            try:
                code, body = self._exchange(command, payload, expect, deadline)
            except FrameError as exc:
                problem = str(exc)
                continue
            if code == expect.value:
                return body
            name = _error_name(body[0])
            if body[0] in {e.value for e in TRANSIENT_ERRORS}:
                problem = f"the board answered {name}"
                continue
            raise BoardError(f"the board rejected {command.name}: {name}")
        raise BoardError(
            f"no valid reply from the board to {command.name} ({problem or 'deadline passed'}); "
            "check the port, the baud rate and that the bitstream is loaded")

    def info(self):
        body = self._request(Command.INFO, expect=Reply.INFO)
        k = MODEL_ID_BYTES
        return BoardInfo(model_id=bytes(body[:k]), num_classes=body[k],
                         image_bytes=int.from_bytes(body[k + 1:k + 3], "little"),
                         loaded=bool(body[k + 3]), config_digest=bytes(body[k + 4:]))

    def load(self, data, model_id, progress=None):
        """Load a load stream as one transaction; the board holds ``model_id`` when it passes.

        ``progress(bytes_sent)`` is called after each chunk.
        """
        data = bytes(data)
        model_id = bytes(model_id)[:MODEL_ID_BYTES].ljust(MODEL_ID_BYTES, b"\0")
        if len(data) >= 1 << 32:
            raise BoardError(f"a load stream of {len(data)} bytes is over the 4 GiB limit")
        self._request(Command.LOAD_BEGIN)
        step = self.chunk - 1
        for k, start in enumerate(range(0, len(data), step)):
            piece = data[start:start + step]
            self._request(Command.LOAD, bytes([k & 1]) + piece)
            if progress is not None:
                progress(start + len(piece))
        self._request(Command.LOAD_END, model_id + len(data).to_bytes(4, "little")
                      + sum16(data).to_bytes(2, "little"))

    def load_model(self, image, progress=None):
        """Load a :class:`~sdtforge.boards.image.ModelImage` where the bitstream can run it.

        Raises :class:`BoardError` (and sends nothing) when the model was compiled for another
        hardware configuration or image size than the board's bitstream.
        """
        info = self.info()
        if info.config_digest != image.config_digest:
            raise BoardError(
                f"the model was compiled for hardware configuration "
                f"{image.config_digest.hex()}, the board's bitstream is "
                f"{info.config_digest.hex()}; compile it with the bitstream's config.json "
                "(sdtforge run --config BUILD/config.json)")
        if (info.image_bytes, info.num_classes) != (image.image_bytes, image.num_classes):
            raise BoardError(
                f"the model takes {image.image_bytes}-byte images and has {image.num_classes} "
                f"classes; the bitstream was built for {info.image_bytes} and "
                f"{info.num_classes}")
        self.load(image.load, image.model_id, progress=progress)

    def classify(self, pixels, num_classes):
        """Classify one image; returns its :class:`~sdtforge.hdl.result.Result`.

        The ``RESULT`` payload is the accelerator's result words, 4 bytes each (LE), except
        the class word, sent as 1 byte.
        """
        body = self._request(Command.CLASSIFY, bytes(pixels), expect=Reply.RESULT)
        k = 4 * result_class_word(num_classes)
        size = 4 * result_words(num_classes) - 3
        if len(body) != size:
            raise BoardError(f"result of {len(body)} bytes, expected {size}")
        words = [int.from_bytes(body[i:i + 4], "little") for i in range(0, k, 4)]
        words += [body[k], int.from_bytes(body[k + 1:], "little")]
        return decode_result(words, num_classes)
