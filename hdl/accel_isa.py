"""Instruction set of the accelerator: layer descriptors, opcodes, load targets.

This module is the single source of truth for the bit-level encodings shared by the compiler
(:mod:`sdtforge.hdl.compile`, host side), the controller (:mod:`sdtforge.hdl.accelerator`,
gateware side) and the simulation and board tools that read them back; ``docs/accelerator.md``
explains them. The result stream's format is the result emitter's (:mod:`.result`).

A program is a list of descriptors, one per layer operation, executed in order until ``END``.
The descriptor layout is a function of the hardware configuration (:func:`descriptor_layout`):
every field is as wide as the configuration's loop counters or the memory it addresses need
(:func:`descriptor_widths`), so a small model gets a short descriptor and a large one is not
capped by a fixed field width. It is a union of one view per operation (:data:`OP_VIEWS`) over
a common header: the fields that logic shared by several operations reads (loop bounds, map
layouts) sit at the same bits in every view that has them, under a name that says what they
mean for that operation (``PIXEL``'s ``pad_base``, ``POOL_OR``'s ``words``, ``END``'s
``classes``); the fields only one kind of operation reads (weight and parameter rows, or the
SDSA K / V maps and threshold) share the tail.

Every value the host packs into a field of the accelerator — a descriptor field, a lane of a
memory row, a load-record header field — goes through :func:`pack_field`, which refuses a value
outside the field's range with a :class:`~sdtforge.errors.UserError` instead of truncating it.

Address arithmetic in the controller uses shifts and adds only: every spike map and the
residual stream use a power-of-two layout ``base + (t << sht | y << shy | x << shx | word)``,
so no address needs a multiplier.
"""

import operator
from types import SimpleNamespace

from amaranth.hdl import Shape, signed
from amaranth.lib import data, enum

from sdtforge.errors import UserError

__all__ = ["Op", "Mode", "Target", "address_bits", "PROGRAM_WORD_BITS", "SDSA_THETA_BITS",
           "OP_VIEWS", "descriptor_widths", "descriptor_layout", "op_view", "descriptor_words",
           "program_words", "join_program_words", "decode_descriptor", "shared_field",
           "shared_fields",
           "RECORD_HEADER_BYTES", "RECORD_HEADER", "field_range", "pack_field"]


class Op(enum.Enum, shape=3):
    """Layer operation codes."""
    #: stop; emit the result (``classes`` logits)
    END = 0
    #: 3×3 or 1×1 convolution over a spike map (events from the event encoder)
    CONV = 1
    #: 3×3 convolution over uint8 pixels, bit-plane by bit-plane (Horner), once per image
    #: (``per_step``: over each step's event frame, at every step)
    PIXEL = 2
    #: LIF over the residual stream: ``spikes = LIF(X)``
    STREAM_LIF = 3
    #: spike-driven self-attention: ``out = Q ∧ LIF(Σ_n K∧V << shift)`` (``erode``: the DVS
    #: mode's erosions of ``K∧V`` and ``Q∧mask`` over (token, channel within a head))
    SDSA = 4
    #: spike OR pool 3×3, stride 2, pad 1 (``stride1``: stride 1, a DVS model's erosion)
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


#: Width of a program-memory word. A descriptor is stored as :func:`descriptor_words` words,
#: lowest bits first, descriptor ``n`` at words ``n·k … n·k + k - 1``; the controller shifts
#: them into its descriptor register one per cycle. A narrow memory costs 2 iCE40 block RAMs
#: where a descriptor-wide one costs several (``SB_RAM40_4K`` is at most 16 bits wide).
PROGRAM_WORD_BITS = 16

#: Width of the signed SDSA mask threshold (the SDSA unit's ``theta`` port).
SDSA_THETA_BITS = 16


def address_bits(depth):
    """Address bits of a memory of ``depth`` rows (at least 1: an Amaranth address signal of
    width 0 cannot be compared or incremented)."""
    return max((depth - 1).bit_length(), 1)


def descriptor_widths(config):
    """Bits of every descriptor field of ``config`` (an :class:`~.compile.AccelConfig`).

    Loop counts are stored as counts (not minus one), so a count field is one bit wider than
    its loop counter (``coord_bits``, ``step_bits``, ``group_bits``, ``word_bits``); ``cin``
    (channels, or ``END``'s classes) is ``channel_bits`` wide; a map base is as wide as the
    address of the memory it points into, a layout shift holds the largest such address width,
    and ``w_base`` / ``w_gstride`` / ``prow`` are as wide as a weight row index, a weight row
    count and a parameter row index.

    Returns
    -------
    dict of str to int
        Unsigned width per field name of :func:`descriptor_layout`'s header and tails
        (``theta`` is :data:`SDSA_THETA_BITS`, signed).
    """
    maps = max(address_bits(config.spikes_depth), address_bits(config.stream_depth))
    coord = config.coord_bits + 1
    return {
        "steps": config.step_bits + 1, "groups": config.group_bits + 1,
        "words": config.word_bits + 1, "cin": config.channel_bits,
        "out_h": coord, "out_w": coord, "in_h": coord, "in_w": coord,
        "in_base": maps, "out_base": maps,
        "shift": max(maps, address_bits(config.pixels_depth)).bit_length(),
        "prow": address_bits(max(config.biases_depth, config.thresholds_depth,
                                 config.shifts_depth)),
        "w_base": address_bits(config.weights_depth),
        "w_gstride": config.weights_depth.bit_length(),
        "pad_base": address_bits(config.pixels_depth),
        "k_base": address_bits(config.spikes_depth), "v_base": address_bits(config.spikes_depth),
        "theta": SDSA_THETA_BITS,
    }


def _physical(config):
    """``(header, tails)``: the descriptor's bits, as laid out (lowest bit first)."""
    w = descriptor_widths(config)
    sh = w["shift"]
    header = data.StructLayout({
        "op": Op, "mode": Mode, "k3": 1, "pool": 1,
        "steps": w["steps"], "groups": w["groups"], "out_h": w["out_h"], "out_w": w["out_w"],
        "cin": w["cin"], "words": w["words"], "in_h": w["in_h"], "in_w": w["in_w"],
        "in_base": w["in_base"], "in_shx": sh, "in_shy": sh, "in_sht": sh,
        "out_base": w["out_base"], "out_shx": sh, "out_shy": sh, "out_sht": sh,
    })
    tails = {
        "param": data.StructLayout({"prow": w["prow"], "w_base": w["w_base"],
                                    "w_gstride": w["w_gstride"], "pad_base": w["pad_base"]}),
        "sdsa": data.StructLayout({"k_base": w["k_base"], "v_base": w["v_base"],
                                   "theta": signed(w["theta"])}),
    }
    return header, tails


_LOOP = {"steps": "steps", "groups": "groups", "pos_h": "out_h", "pos_w": "out_w"}
_IN = {"in_base": "in_base", "in_shx": "in_shx", "in_shy": "in_shy", "in_sht": "in_sht"}
_OUT = {"out_base": "out_base", "out_shx": "out_shx", "out_shy": "out_shy",
        "out_sht": "out_sht"}
_ROWS = {"prow": "param.prow", "w_base": "param.w_base", "w_gstride": "param.w_gstride"}

#: Each operation's view: its field names → the header field (or ``tail.field``) they read.
#:
#: ``pos_h`` / ``pos_w`` are the positions the (group, position, step) loop iterates: the output
#: map, but a pooled ``CONV``'s *input* map (each conv value is max-merged into its windows) and
#: ``POOL_OR``'s pooled map. ``groups`` counts output groups of ``P`` channels; ``POOL_OR``'s
#: ``words`` counts the spike words of a position in the same loop. ``cin`` / ``channels``
#: mask the last spike word and step the weight rows per tap; ``words`` is the spike words
#: (``PIXEL``: bytes) read per input position. ``prow`` is the first bias / threshold / shift
#: row, ``w_base`` the first weight row, ``w_gstride`` the weight rows per group.
OP_VIEWS = {
    Op.END: {"classes": "cin"},
    Op.CONV: {"mode": "mode", "k3": "k3", "pool": "pool", **_LOOP, "cin": "cin",
              "words": "words", "in_h": "in_h", "in_w": "in_w", **_IN, **_OUT, **_ROWS},
    Op.PIXEL: {"mode": "mode", "k3": "k3", **_LOOP, "channels": "cin", "words": "words",
               "height": "in_h", "width": "in_w", "pix_shx": "in_shx", "pix_shy": "in_shy",
               "pix_sht": "in_sht", "per_step": "pool", "pad_base": "param.pad_base", **_OUT,
               **_ROWS},
    Op.STREAM_LIF: {"mode": "mode", **_LOOP, **_IN, **_OUT, "prow": "param.prow"},
    Op.SDSA: {"steps": "steps", "cin": "cin", "words": "words", "tokens_h": "in_h",
              "tokens_w": "in_w", "q_base": "in_base", "in_shx": "in_shx", "in_shy": "in_shy",
              "in_sht": "in_sht", "k_base": "sdsa.k_base", "v_base": "sdsa.v_base",
              "theta": "sdsa.theta", "erode": "pool", **_OUT},
    Op.POOL_OR: {"steps": "steps", "words": "groups", "pos_h": "out_h", "pos_w": "out_w",
                 "in_h": "in_h", "in_w": "in_w", "stride1": "k3", **_IN, **_OUT},
    Op.HEAD_SUM: {"mode": "mode", **_LOOP, "tokens_h": "in_h", "tokens_w": "in_w", **_IN,
                  **_OUT, "prow": "param.prow"},
}


def _member(op):
    """The union member (view) name of ``op``: ``Op.POOL_OR`` → ``"pool_or"``."""
    return op.name.lower()


_LAYOUTS = {}


def descriptor_layout(config):
    """The descriptor of ``config``: a :class:`~amaranth.lib.data.UnionLayout` of views.

    Members: ``op`` (the :class:`Op`, lowest bits) and one view per operation, named after it
    in lower case (``conv``, ``pixel``, ``stream_lif``, ``sdsa``, ``pool_or``, ``head_sum``,
    ``end``): a :class:`~amaranth.lib.data.FlexibleLayout` of the whole descriptor with ``op``
    and the fields of :data:`OP_VIEWS`. The controller reads an operation's fields through its
    view; the compiler builds each descriptor with ``view.const(...)``.
    """
    key = tuple(sorted(descriptor_widths(config).items()))
    if key in _LAYOUTS:
        return _LAYOUTS[key]
    header, tails = _physical(config)
    size = header.size + max(t.size for t in tails.values())

    def field(path):
        if "." in path:
            tail, name = path.split(".")
            f = tails[tail][name]
            return data.Field(f.shape, header.size + f.offset)
        return header[path]

    members = {"op": Op}
    for op, fields in OP_VIEWS.items():
        members[_member(op)] = data.FlexibleLayout(
            size, {"op": header["op"], **{name: field(p) for name, p in fields.items()}})
    layout = _LAYOUTS[key] = data.UnionLayout(members)
    return layout


def op_view(config, op):
    """The :class:`~amaranth.lib.data.FlexibleLayout` view of ``op`` in ``config``'s layout."""
    return descriptor_layout(config).members[_member(op)]


def descriptor_words(config):
    """Program words per descriptor of ``config``: ``ceil(descriptor bits / 16)``."""
    return -(-descriptor_layout(config).size // PROGRAM_WORD_BITS)


def program_words(value, count):
    """An encoded descriptor (an integer) as its ``count`` program words, lowest first."""
    mask = (1 << PROGRAM_WORD_BITS) - 1
    return [(value >> (PROGRAM_WORD_BITS * i)) & mask for i in range(count)]


def join_program_words(words):
    """The descriptor (an integer) whose program words, lowest first, are ``words``."""
    return sum(int(w) << (PROGRAM_WORD_BITS * i) for i, w in enumerate(words))


def decode_descriptor(config, value):
    """An encoded descriptor as a dict of its operation's view: ``op`` and every field.

    ``op`` and ``mode`` come back as :class:`Op` / :class:`Mode` members, the rest as integers
    (``theta`` signed). An unknown opcode raises :class:`ValueError`.
    """
    layout = descriptor_layout(config)
    op = Op(value & ((1 << Shape.cast(Op).width) - 1))
    view = data.Const(layout.members[_member(op)], value & ((1 << layout.size) - 1))
    out = {}
    for name, _ in layout.members[_member(op)]:
        v = view[name]
        out[name] = v if isinstance(v, enum.Enum) else int(v)
    return out


def shared_field(d, **views):
    """One field that several operations' views name, read through them (controller helper).

    ``views`` maps a view name of the descriptor ``d`` (a :class:`~amaranth.lib.data.View` of
    :func:`descriptor_layout`) to its field, e.g. ``shared_field(d, conv="in_h",
    pixel="height")``; the fields must be the same bits (so logic serving those operations
    reads one signal, no multiplexer), which is checked here. Returns the first one.
    """
    layout = d.shape()
    first = None
    for view, name in views.items():
        f = layout.members[view][name]
        if first is None:
            first = (f, getattr(d, view)[name])
        elif (f.offset, Shape.cast(f.shape)) != (first[0].offset, Shape.cast(first[0].shape)):
            raise AssertionError(f"descriptor field {view}.{name} is not the same bits as the "
                                 f"other views' ({views})")
    return first[1]


def shared_fields(d):
    """The fields that the engine's shared logic reads, each through every view that has it.

    Returns a namespace of :func:`shared_field` values: the row nest's bounds (``steps``,
    ``groups`` — ``POOL_OR``'s ``words`` —, ``out_h``, ``out_w``), the input map's size
    (``in_h``, ``in_w``), ``words``, the input and output maps' bases and shifts (``in_base``,
    ``in_sh``, ``out_base``, ``out_sh``: ``(x, y, t)``), and the P-lane results' ``mode`` and
    ``prow``, the gathers' ``k3``, ``w_base``, ``w_gstride`` and ``cin``.
    """
    loops = ("conv", "pixel", "stream_lif", "pool_or", "head_sum")   # the (g, pos, t) nest
    reads = ("conv", "stream_lif", "pool_or", "head_sum")            # a spike or stream map
    writes = loops + ("sdsa",)
    outputs = ("conv", "pixel", "stream_lif", "head_sum")            # P-lane results
    gathers = ("conv", "pixel")

    def each(names, field):
        return shared_field(d, **dict.fromkeys(names, field))

    return SimpleNamespace(
        steps=shared_field(d, sdsa="steps", **dict.fromkeys(loops, "steps")),
        groups=shared_field(d, pool_or="words", **dict.fromkeys(outputs, "groups")),
        words=shared_field(d, conv="words", pixel="words", sdsa="words"),
        in_h=shared_field(d, conv="in_h", pixel="height", pool_or="in_h", sdsa="tokens_h",
                          head_sum="tokens_h"),
        in_w=shared_field(d, conv="in_w", pixel="width", pool_or="in_w", sdsa="tokens_w",
                          head_sum="tokens_w"),
        out_h=each(loops, "pos_h"),
        out_w=each(loops, "pos_w"),
        in_base=shared_field(d, sdsa="q_base", **dict.fromkeys(reads, "in_base")),
        in_sh=tuple(each(reads + ("sdsa",), f"in_sh{a}") for a in "xyt"),
        out_base=each(writes, "out_base"),
        out_sh=tuple(each(writes, f"out_sh{a}") for a in "xyt"),
        mode=each(outputs, "mode"),
        prow=each(outputs, "prow"),
        k3=each(gathers, "k3"),
        w_base=each(gathers, "w_base"),
        w_gstride=each(gathers, "w_gstride"),
        cin=shared_field(d, conv="cin", pixel="channels", sdsa="cin"),
    )


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
