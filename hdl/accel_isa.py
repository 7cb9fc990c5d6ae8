"""Instruction set of the accelerator: layer descriptors, opcodes, load targets.

This module is the single source of truth for the bit-level encoding shared by the compiler
(:mod:`sdtforge.hdl.compile`, host side) and the controller
(:mod:`sdtforge.hdl.accelerator`, gateware side); ``docs/accelerator.md`` explains it.

A program is a list of :data:`DESCRIPTOR` words, one per layer operation, executed in order
until ``END``. Every field is a little-endian bit field of the descriptor word (field order
below = bit order, lowest first); all are unsigned except ``theta`` (two's complement).

Every value the host packs into a field of the accelerator — a descriptor field, a lane of a
memory row, a load-record header field — goes through :func:`pack_field`, which refuses a value
outside the field's range with a :class:`~sdtforge.errors.UserError` instead of truncating it.

Address arithmetic in the controller uses shifts and adds only: every spike map and the
residual stream use a power-of-two layout ``base + (t << sht | y << shy | x << shx | word)``,
so no address needs a multiplier.
"""

import operator

from amaranth.hdl import Shape, signed
from amaranth.lib import data, enum
from amaranth.utils import ceil_log2

from sdtforge.errors import UserError

__all__ = ["Op", "Mode", "Target", "DESCRIPTOR", "PROGRAM_WORD_BITS",
           "DESCRIPTOR_WORDS", "descriptor_words", "RECORD_HEADER_BYTES", "RECORD_HEADER",
           "descriptor_fields", "field_range", "pack_field"]


class Op(enum.Enum, shape=3):
    """Layer operation codes."""
    #: stop; emit the result (``cin`` = number of classes)
    END = 0
    #: 3×3 or 1×1 convolution over a spike map (events from the event encoder)
    CONV = 1
    #: 3×3 convolution over uint8 pixels, bit-plane by bit-plane (Horner), once per image
    PIXEL = 2
    #: LIF over the residual stream: ``spikes = LIF(X)``
    STREAM_LIF = 3
    #: spike-driven self-attention: ``out = Q ∧ LIF(Σ_n K∧V << shift)``
    SDSA = 4
    #: spike OR pool 3×3, stride 2, pad 1
    POOL_OR = 5
    #: ``spikes = LIF(Σ_tokens X)`` (classifier head input)
    HEAD_SUM = 6


class Mode(enum.Enum, shape=2):
    """Where the ``P``-lane result of ``CONV``/``PIXEL``/``STREAM_LIF``/``HEAD_SUM`` goes."""
    #: LIF (threshold row ``prow + g``), spikes into the output map
    SPIKE = 0
    #: ``X = acc << shift`` (after the integer max pool when ``pool`` is set)
    SET = 1
    #: ``X += acc << shift``
    ADD = 2
    #: ``logits[g] += acc`` summed over time steps
    LOGIT = 3


class Target(enum.Enum, shape=8):
    """Load-stream record targets (which memory a record writes)."""
    PROGRAM = 0
    WEIGHTS = 1
    BIASES = 2
    THRESHOLDS = 3
    SHIFTS = 4
    PIXELS = 5


#: One layer descriptor. Loop counts are stored as counts (not minus one).
DESCRIPTOR = data.StructLayout({
    "op": Op,             # operation
    "mode": Mode,         # output mode
    "k3": 1,              # 3×3 kernel (else 1×1)
    "pool": 1,            # integer max pool 3×3/s2/p1 before the SET shift
    "cin": 12,            # input channels (END: number of classes)
    "words": 8,           # input words per position (spike words, or pixel channels)
    "groups": 8,          # output channel groups of P lanes
    "steps": 8,           # time steps T
    "in_h": 8, "in_w": 8,     # input map height, width
    "out_h": 8, "out_w": 8,   # positions iterated (POOL_OR: pooled; pooled CONV: input)
    "in_base": 20,        # input map base (spike, pixel or stream memory)
    "in_shx": 5, "in_shy": 5, "in_sht": 5,      # input layout shifts
    "out_base": 20,       # output map base (spike or stream memory)
    "out_shx": 5, "out_shy": 5, "out_sht": 5,   # output layout shifts
    "k_base": 20,         # SDSA: K map base (same layout as the Q input)
    "v_base": 20,         # SDSA: V map base
    "w_base": 20,         # first weight row of the layer
    "w_gstride": 16,      # weight rows per output group (taps × cin)
    "prow": 12,           # first bias / threshold / shift row (one row per group)
    "theta": signed(16),  # SDSA mask threshold
})

#: Width of a program-memory word. A descriptor is stored as :data:`DESCRIPTOR_WORDS` words,
#: lowest bits first, at ``16·n … 16·n + 15`` for descriptor ``n``; the controller shifts them
#: into its descriptor register one per cycle. A narrow memory costs 2 iCE40 block RAMs where
#: a descriptor-wide one costs 16 (``SB_RAM40_4K`` is at most 16 bits wide).
PROGRAM_WORD_BITS = 16

#: Program words per descriptor (a power of two, so a descriptor's first word is ``n << 4``).
DESCRIPTOR_WORDS = 1 << ceil_log2(-(-DESCRIPTOR.size // PROGRAM_WORD_BITS))


def descriptor_words(value):
    """One encoded descriptor (an integer) as its :data:`DESCRIPTOR_WORDS` program words."""
    mask = (1 << PROGRAM_WORD_BITS) - 1
    return [(value >> (PROGRAM_WORD_BITS * i)) & mask for i in range(DESCRIPTOR_WORDS)]


#: Load record header fields in stream order, ``(name, bytes)``, each unsigned little-endian:
#: target, first address, word count.
RECORD_HEADER = (("target", 1), ("address", 4), ("count", 4))

#: Bytes of a load record header.
RECORD_HEADER_BYTES = sum(n for _, n in RECORD_HEADER)


def field_range(bits, signed=False):
    """``(lowest, highest)`` value of a ``bits``-bit field (two's complement if ``signed``)."""
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def pack_field(value, bits, *, signed=False, what, hint=""):
    """``value`` as the bit pattern of one ``bits``-bit field, after a range check.

    The one place where the host turns a number into field bits: a value outside the field's
    range raises :class:`~sdtforge.errors.UserError` naming ``what`` (the layer or record and
    the field), the value and the range, followed by ``hint``; nothing is ever truncated. A
    non-integer ``value`` (a float) is a programming error: :class:`TypeError`.
    """
    value = operator.index(value)
    lo, hi = field_range(bits, signed)
    if not lo <= value <= hi:
        kind = "signed" if signed else "unsigned"
        raise UserError(f"{what} = {value} does not fit its {bits}-bit {kind} field "
                        f"({lo}..{hi}){hint}")
    return value & ((1 << bits) - 1)


def descriptor_fields():
    """``(name, offset, bits, signed)`` of every :data:`DESCRIPTOR` field, lowest bit first."""
    out = []
    for name, f in DESCRIPTOR:
        shape = Shape.cast(f.shape)
        out.append((name, f.offset, shape.width, shape.signed))
    return out
