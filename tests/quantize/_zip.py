"""ZIP and ``.npy`` helpers shared by the ``.sfm`` loader tests and its fuzz tests: they take a
file apart and build one by hand, with any declared size and CRC (``zipfile`` writes true ones).
"""

import io
import struct
import zipfile
import zlib

import numpy as np


def npy(array):
    """The ``.npy`` bytes of ``array``."""
    b = io.BytesIO()
    np.save(b, array, allow_pickle=False)
    return b.getvalue()


def entries(blob):
    """The raw ``.npy`` bytes of every entry of ``blob``, by name without ``.npy``."""
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        return {n[:-4]: zf.read(n) for n in zf.namelist()}


def zip_entries(entries, method=zipfile.ZIP_DEFLATED):
    """A ZIP of ``{name: .npy bytes}`` written by ``zipfile``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, raw in entries.items():
            zf.writestr(name + ".npy", raw)
    return buf.getvalue()


def raw_zip(members):
    """A ZIP built by hand from ``(name, method, compressed bytes, crc, declared size)``."""
    local, central = io.BytesIO(), io.BytesIO()
    for name, method, comp, crc, size in members:
        fname = name.encode()
        offset = local.tell()
        local.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 33, crc,
                                len(comp), size, len(fname), 0) + fname + comp)
        central.write(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 33, crc,
                                  len(comp), size, len(fname), 0, 0, 0, 0, 0, offset) + fname)
    cd = central.getvalue()
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(cd),
                      local.tell(), 0)
    return local.getvalue() + cd + end


def deflate(raw, zeros=0):
    """Raw DEFLATE of ``raw`` followed by ``zeros`` zero bytes, and the CRC-32 of it all."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts, crc, chunk = [c.compress(raw)], zlib.crc32(raw), bytes(1 << 20)
    for _ in range(zeros >> 20):
        parts.append(c.compress(chunk))
        crc = zlib.crc32(chunk, crc)
    parts.append(c.flush())
    return b"".join(parts), crc
