"""Host driver of the board link: load a model image, set its id, classify images.

Works over anything with pyserial's ``read(n)``/``write(data)`` — a real ``serial.Serial`` or
the simulated UART of the tests, so the tests take the same path as a real board.
"""

from dataclasses import dataclass

from sdtforge.errors import UserError

from .protocol import (
    MODEL_ID_BYTES,
    Command,
    ErrorCode,
    FrameError,
    Reply,
    decode_frame,
    encode_frame,
)

__all__ = ["BoardClient", "BoardError", "ClassifyResult", "BoardInfo"]


class BoardError(UserError):
    """The board answered with an error frame, or not at all."""


@dataclass(frozen=True)
class ClassifyResult:
    logits: tuple
    label: int
    cycles: int


@dataclass(frozen=True)
class BoardInfo:
    model_id: bytes
    num_classes: int
    image_bytes: int


class BoardClient:
    """Request/response client of :class:`~sdtforge.boards.link.HostLink`.

    Parameters
    ----------
    port : object
        Has ``read(n) -> bytes`` (short on timeout) and ``write(data)``.
    chunk : int
        Largest ``LOAD`` payload; must not exceed the board's frame buffer.
    """

    def __init__(self, port, *, chunk=256):
        self.port = port
        self.chunk = chunk

    def _request(self, command, payload=b"", expect=Reply.ACK):
        self.port.write(encode_frame(command, payload))
        try:
            code, body = decode_frame(self.port.read)
        except FrameError as exc:
            raise BoardError(
                f"no valid reply from the board to {command.name}: {exc}; "
                "check the port, the baud rate and that the bitstream is loaded") from None
        if code == Reply.ERROR.value:
            known = {e.value: e.name for e in ErrorCode}
            name = known.get(body[0], f"code 0x{body[0]:02x}") if body else "no code"
            raise BoardError(f"the board rejected {command.name}: {name}")
        if code != expect.value:
            raise BoardError(f"unexpected reply 0x{code:02x} to {command.name}")
        return body

    def info(self):
        body = self._request(Command.INFO, expect=Reply.INFO)
        return BoardInfo(model_id=bytes(body[:MODEL_ID_BYTES]), num_classes=body[MODEL_ID_BYTES],
                         image_bytes=int.from_bytes(body[MODEL_ID_BYTES + 1:], "little"))

    def set_id(self, model_id):
        model_id = bytes(model_id)[:MODEL_ID_BYTES].ljust(MODEL_ID_BYTES, b"\0")
        self._request(Command.SET_ID, model_id)

    def load(self, image, model_id=None, progress=None):
        """Send a model's load-stream bytes in chunks, then record its id on the board."""
        image = bytes(image)
        for start in range(0, len(image), self.chunk):
            self._request(Command.LOAD, image[start:start + self.chunk])
            if progress is not None:
                progress(min(len(image), start + self.chunk))
        if model_id is not None:
            self.set_id(model_id)

    def classify(self, pixels, num_classes):
        body = self._request(Command.CLASSIFY, bytes(pixels), expect=Reply.RESULT)
        if len(body) != 4 * num_classes + 5:
            raise BoardError(f"result of {len(body)} bytes, expected {4 * num_classes + 5}")
        logits = tuple(int.from_bytes(body[4 * i:4 * i + 4], "little", signed=True)
                       for i in range(num_classes))
        return ClassifyResult(logits=logits, label=body[4 * num_classes],
                              cycles=int.from_bytes(body[4 * num_classes + 1:], "little"))
