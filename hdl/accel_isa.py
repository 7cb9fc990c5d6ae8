"""Instruction set of the accelerator: layer descriptors, opcodes, load targets.

This module is the single source of truth for the bit-level encoding shared by the compiler
(:mod:`sdtforge.hdl.compile`, host side) and the controller
(:mod:`sdtforge.hdl.accelerator`, gateware side); ``docs/accelerator.md`` explains it.

A program is a list of :data:`DESCRIPTOR` words, one per layer operation, executed in order
until ``END``. Every field is an unsigned little-endian bit field of the descriptor word
(field order below = bit order, lowest first).

Address arithmetic in the controller uses shifts and adds only: every spike map and the
residual stream use a power-of-two layout ``base + (t << sht | y << shy | x << shx | word)``,
so no address needs a multiplier.
"""

from amaranth.lib import data, enum

__all__ = ["Op", "Mode", "Target", "DESCRIPTOR", "DESCRIPTOR_BYTES", "PROGRAM_WORD_BITS",
           "DESCRIPTOR_WORDS", "descriptor_words", "RESULT_WORD_BITS", "RECORD_HEADER_BYTES"]


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
    "theta": 16,          # SDSA mask threshold (signed)
})

#: Bytes per descriptor (the layout padded to whole program words).
DESCRIPTOR_BYTES = (DESCRIPTOR.size + 7) // 8

#: Width of a program-memory word. A descriptor is stored as :data:`DESCRIPTOR_WORDS` words,
#: lowest bits first, at ``16·n … 16·n + 15`` for descriptor ``n``; the controller shifts them
#: into its descriptor register one per cycle. A narrow memory costs 2 iCE40 block RAMs where
#: a descriptor-wide one costs 16 (``SB_RAM40_4K`` is at most 16 bits wide).
PROGRAM_WORD_BITS = 16

#: Program words per descriptor (a power of two, so a descriptor's first word is ``n << 4``).
DESCRIPTOR_WORDS = 1 << ((DESCRIPTOR.size + PROGRAM_WORD_BITS - 1)
                         // PROGRAM_WORD_BITS - 1).bit_length()


def descriptor_words(value):
    """One encoded descriptor (an integer) as its :data:`DESCRIPTOR_WORDS` program words."""
    mask = (1 << PROGRAM_WORD_BITS) - 1
    return [(value >> (PROGRAM_WORD_BITS * i)) & mask for i in range(DESCRIPTOR_WORDS)]

#: Width of one result-stream word.
RESULT_WORD_BITS = 32

#: Load record header: target (1 byte), address (4 bytes LE), count (4 bytes LE).
RECORD_HEADER_BYTES = 9
