"""Host-link frame format, shared by the board gateware and the host driver.

Every frame, in both directions::

    0xA5 | command (1 byte) | length (2 bytes, little-endian) | payload (length bytes) | crc8

``crc8`` is CRC-8/SMBUS (polynomial 0x07, initial value 0) over command, length and payload.
Host → board commands carry their payload; the board answers each frame it receives with
exactly one frame (``ACK``, ``RESULT``, ``INFO`` or ``ERROR``), so a host never waits on a frame
that will not come. A board that sees a bad checksum, an unknown command, an over-long payload,
a gap of more than the timeout inside a frame, or a character lost while it was busy (UART
overrun) drops the frame and answers ``ERROR`` with a code.

A model load is a transaction (``docs/boards.md`` §2)::

    LOAD_BEGIN                                   → ACK          (aborts any load, unloads)
    LOAD  sequence bit (u8) | bytes of the stream → ACK        (repeat, the bit alternating)
    LOAD_END  model id (4) | length (u32 LE) | sum16 (u16 LE)   → ACK, or ERROR MODEL

The board counts the model as loaded only after ``LOAD_END`` found every record complete, the
stream ``length`` bytes long and the sum of its bytes modulo 2^16 equal to ``sum16`` (each
chunk is CRC-checked in its frame already; the whole-stream sum and length catch a chunk lost,
repeated or out of place, for a counter, 16 flip-flops and an adder on the UP5K).

``LOAD`` chunks carry an alternating sequence bit (0 for the first chunk of a load): the board
applies a chunk whose bit is the one it expects and then expects the other; a chunk with the
other bit is the previous one sent again (its ``ACK`` was lost) and is acknowledged without
being written, so resending a chunk is always safe.
"""

from amaranth.lib import enum

__all__ = ["SYNC", "Command", "Reply", "ErrorCode", "TRANSIENT_ERRORS", "crc8", "sum16",
           "encode_frame", "FrameError", "decode_frame", "MODEL_ID_BYTES", "DIGEST_BYTES",
           "INFO_BYTES", "ACK_BYTES", "ERROR_BYTES", "LOAD_END_BYTES",
           "MAX_SKIP", "MAX_PAYLOAD"]

#: The most bytes one frame carries (its length field is 16 bits).
MAX_PAYLOAD = 0xFFFF

SYNC = 0xA5
#: Bytes of a model id: the start of the SHA-256 of its load stream (32 bits tell the models
#: a board may hold apart; each byte is a flip-flop byte and a multiplexer input on the UP5K).
MODEL_ID_BYTES = 4
#: Bytes of the hardware-configuration digest in ``INFO`` (:func:`~.image.config_digest`).
DIGEST_BYTES = 4
#: ``INFO`` payload: model id, classes (u8), image bytes (u16 LE), loaded (u8), digest.
INFO_BYTES = MODEL_ID_BYTES + 1 + 2 + 1 + DIGEST_BYTES
#: ``ACK`` payload: the command answered (u8), the sequence bit of the ``LOAD`` answered (u8).
ACK_BYTES = 2
#: ``ERROR`` payload: the error code (u8), the command answered (u8; 0 when unknown).
ERROR_BYTES = 2
#: ``LOAD_END`` payload: model id, stream length (u32 LE), byte sum mod 2^16 (u16 LE).
LOAD_END_BYTES = 4 + 2 + MODEL_ID_BYTES
#: Non-sync bytes a host skips while hunting for a reply before it gives up on the line.
MAX_SKIP = 4096


class Command(enum.Enum, shape=8):
    """Host → board commands."""
    LOAD = 0x01        #: payload: sequence bit (u8) + a chunk of the accelerator's load stream
    CLASSIFY = 0x02    #: payload: one image, uint8 pixels in the accelerator's input order
    INFO = 0x03        #: no payload; the board answers INFO
    LOAD_END = 0x04    #: payload: model id, length (u32 LE), sum16 (u16 LE); commits the load
    LOAD_BEGIN = 0x05  #: no payload; aborts any load and resets the engine


class Reply(enum.Enum, shape=8):
    """Board → host replies."""
    ACK = 0x81       #: command (u8), sequence bit (u8)
    RESULT = 0x82    #: int32 LE logits × classes, class (u8), cycles (u32 LE)
    INFO = 0x83      #: model id, classes (u8), image bytes (u16 LE), loaded (u8), digest
    ERROR = 0xEE     #: error code (u8), command (u8)


class ErrorCode(enum.Enum, shape=8):
    CHECKSUM = 0x01   #: the frame's CRC-8 is wrong
    COMMAND = 0x02    #: unknown command
    LENGTH = 0x03     #: payload length wrong for the command, or over the frame buffer
    TIMEOUT = 0x04    #: a gap inside the frame, or the accelerator stalled (engine reset)
    UART = 0x05       #: a character with a framing error (low stop bit)
    OVERRUN = 0x06    #: characters were lost while the board was busy
    NO_MODEL = 0x07   #: CLASSIFY without a completely loaded model
    SEQUENCE = 0x08   #: LOAD or LOAD_END outside a load transaction
    RECORD = 0x09     #: a load record names no memory or runs past its memory's end
    MODEL = 0x0A      #: LOAD_END: length, sum or a partly received record does not check


#: Errors that say nothing about the request itself: resending it may succeed.
TRANSIENT_ERRORS = frozenset({ErrorCode.CHECKSUM, ErrorCode.TIMEOUT, ErrorCode.UART,
                              ErrorCode.OVERRUN})


def crc8(data, crc=0):
    """CRC-8/SMBUS (poly 0x07, init 0, no reflection, no final xor)."""
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def sum16(data):
    """The sum of ``data``'s bytes modulo 2^16 (``LOAD_END``'s whole-stream check)."""
    return sum(bytes(data)) & 0xFFFF


def encode_frame(command, payload=b""):
    """Return the bytes of one frame carrying ``payload`` (at most 65535 bytes)."""
    payload = bytes(payload)
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"frame payload of {len(payload)} bytes is over the {MAX_PAYLOAD}-byte "
                         f"limit")
    body = bytes([int(getattr(command, "value", command))]) + len(payload).to_bytes(2, "little")
    body += payload
    return bytes([SYNC]) + body + bytes([crc8(body)])


class FrameError(Exception):
    """A frame from the board was malformed, or none came in time."""


def decode_frame(read, *, max_skip=MAX_SKIP):
    """Read one frame with ``read(n) -> bytes`` (which may return fewer bytes on timeout).

    Returns ``(code, payload)``; raises :class:`FrameError` on a short read, a bad checksum, or
    more than ``max_skip`` bytes before a sync byte (a line that never stops talking cannot
    keep the reader forever).
    """
    for _ in range(max_skip + 1):
        b = read(1)
        if not b:
            raise FrameError("timed out waiting for a frame from the board")
        if b[0] == SYNC:
            break
    else:
        raise FrameError(f"no frame start in {max_skip} bytes from the board")
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
