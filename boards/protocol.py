"""Host-link frame format, shared by the board gateware and the host driver.

Every frame, in both directions::

    0xA5 | command (1 byte) | length (2 bytes, little-endian) | payload (length bytes) | crc8

``crc8`` is CRC-8/SMBUS (polynomial 0x07, initial value 0) over command, length and payload.
Host → board commands carry their payload; the board answers each frame with exactly one frame
(``ACK``, ``RESULT``, ``INFO`` or ``ERROR``), so a host never waits on a frame that will not
come. A board that sees a bad checksum, an unknown command, an over-long payload or a gap of
more than the timeout inside a frame drops the frame and answers ``ERROR`` with a code.
"""

from amaranth.lib import enum

__all__ = ["SYNC", "Command", "Reply", "ErrorCode", "crc8", "encode_frame", "FrameError",
           "decode_frame", "MODEL_ID_BYTES"]

SYNC = 0xA5
MODEL_ID_BYTES = 8


class Command(enum.Enum, shape=8):
    """Host → board commands."""
    LOAD = 0x01      #: payload: a chunk of the accelerator's load stream (model image)
    CLASSIFY = 0x02  #: payload: one image, uint8 pixels in the accelerator's input order
    INFO = 0x03      #: no payload; the board answers INFO
    SET_ID = 0x04    #: payload: MODEL_ID_BYTES identifying the loaded model (its hash)


class Reply(enum.Enum, shape=8):
    """Board → host replies."""
    ACK = 0x81       #: no payload
    RESULT = 0x82    #: int32 LE logits × classes, class (u8), cycles (u32 LE)
    INFO = 0x83      #: model id (MODEL_ID_BYTES), classes (u8), image bytes (u16 LE)
    ERROR = 0xEE     #: error code (u8)


class ErrorCode(enum.Enum, shape=8):
    CHECKSUM = 0x01
    COMMAND = 0x02
    LENGTH = 0x03
    TIMEOUT = 0x04
    UART = 0x05


def crc8(data, crc=0):
    """CRC-8/SMBUS (poly 0x07, init 0, no reflection, no final xor)."""
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def encode_frame(command, payload=b""):
    """Return the bytes of one frame carrying ``payload`` (at most 65535 bytes)."""
    payload = bytes(payload)
    if len(payload) > 0xFFFF:
        raise ValueError(f"frame payload of {len(payload)} bytes is over the 65535-byte limit")
    body = bytes([int(getattr(command, "value", command))]) + len(payload).to_bytes(2, "little")
    body += payload
    return bytes([SYNC]) + body + bytes([crc8(body)])


class FrameError(Exception):
    """A frame from the board was malformed."""


def decode_frame(read):
    """Read one frame with ``read(n) -> bytes`` (which may return fewer bytes on timeout).

    Returns ``(code, payload)``; raises :class:`FrameError` on a short read or bad checksum.
    Bytes before the sync byte are skipped.
    """
    while True:
        b = read(1)
        if not b:
            raise FrameError("timed out waiting for a frame from the board")
        if b[0] == SYNC:
            break
    head = read(3)
    if len(head) != 3:
        raise FrameError("frame header cut short")
    length = int.from_bytes(head[1:3], "little")
    rest = read(length + 1)
    if len(rest) != length + 1:
        raise FrameError(f"frame payload cut short ({len(rest) - 1} of {length} bytes)")
    if crc8(head + rest[:-1]) != rest[-1]:
        raise FrameError("frame checksum mismatch")
    return head[0], rest[:-1]
