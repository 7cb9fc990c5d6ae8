"""Compiler: integer model (IR) → accelerator program, memory images and hardware config.

The output is plain data: a list of layer descriptors (one dict per operation, in the fields of
its view, :data:`~.accel_isa.OP_VIEWS`), one list of row values per memory, and an
:class:`AccelConfig`. The memory planner sizes every memory, checks the model against a given
configuration and prints a table; the host encoder turns the images into the load-stream bytes
of ``docs/accelerator.md`` §2. Same IR → same bytes.

Every number the compiler writes into a field of the hardware — a descriptor field, a lane of
a memory row, a load-record header field — goes through :func:`~.accel_isa.pack_field`, so a
value the field cannot hold is a :class:`~sdtforge.errors.UserError` naming the layer, the
field, the value and the range, never a silently truncated bit pattern.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field, fields, replace
from enum import Enum

import numpy as np
from amaranth.hdl import Shape, signed, unsigned
from amaranth.lib import data
from amaranth.utils import ceil_log2

from sdtforge.errors import UserError
from sdtforge.quantize import ir
from sdtforge.registry import Registry

from .accel_isa import (
    OP_VIEWS,
    PROGRAM_WORD_BITS,
    RECORD_HEADER,
    RESULT_WORD_BITS,
    Mode,
    Op,
    Target,
    descriptor_words,
    field_range,
    op_view,
    pack_field,
    program_words,
)

__all__ = ["AccelConfig", "Compiled", "compile_model", "load_stream_bytes", "pack_row",
           "pack_memory_row", "encode_descriptor", "record_header", "check_lanes_width",
           "memory_table", "descriptor_words_for", "writeback_cycles", "MEMORIES", "COMPILERS"]

#: Memories of the planner, in table order: (name, load target or None).
MEMORIES = (("program", Target.PROGRAM), ("weights", Target.WEIGHTS),
            ("biases", Target.BIASES), ("thresholds", Target.THRESHOLDS),
            ("shifts", Target.SHIFTS), ("pixels", Target.PIXELS), ("spikes", None),
            ("stream", None), ("logits", None))


#: The narrowest loop counter the compiler derives: a counter over a single value still
#: needs one bit (an Amaranth signal of width 0 cannot be compared or incremented).
_MIN_COUNTER_BITS = 1


def _pow2(n):
    return 1 << ceil_log2(n)


def _log2(n):
    """Layout shift of a power-of-two stride holding ``n`` (0 for ``n <= 1``: no shift)."""
    return ceil_log2(n)


def _counter_bits_for(n):
    """Bits of a loop counter over ``n`` values: ``ceil(log2(n))``, at least the minimum."""
    return max(ceil_log2(n), _MIN_COUNTER_BITS)


def _ceil(a, b):
    return -(-int(a) // int(b))


@dataclass(frozen=True)
class AccelConfig:
    """Hardware configuration of one accelerator build (plain data; saved as JSON).

    Parameters
    ----------
    lanes : int
        PE lanes ``P`` (a power of two, at most ``width``).
    width : int
        Spike word width ``W`` in channels (a power of two, at least 8).
    weight_bits, acc_bits, theta_bits, shift_bits, stream_bits, logit_bits : int
        Signed widths of a weight, an accumulator / LIF input / bias, a threshold, an unsigned
        alignment shift, a residual-stream value and a summed logit.
    program_depth, weights_depth, biases_depth, thresholds_depth, shifts_depth, pixels_depth,
    spikes_depth, stream_depth, logits_depth : int
        Rows of each memory (program: 16-bit words, :func:`~.accel_isa.descriptor_words` per
        descriptor).
    sdsa_channels, max_tokens : int
        Largest SDSA width (a multiple of ``width``) and token count the SDSA unit supports.
    sdsa_shift : int
        The SDSA mask shift the SDSA unit is built with.
    coord_bits, step_bits, group_bits, word_bits : int
        Widths of the controller's loop counters: a map coordinate (the largest map side is
        at most ``2**coord_bits``), a time step, an output group (or word) and a word index
        within a position. The compiler derives the smallest that run the model; every
        counter, comparator and address-generator input is that wide, and the descriptor's
        count fields are one bit wider (a count of ``2**bits`` iterations).
    channel_bits : int
        Width of the descriptor's channel count (``cin``: a layer's input channels, ``END``'s
        classes) and of the controller's class index. With the counter widths and the memory
        depths it fixes every descriptor field's width (:func:`~.accel_isa.descriptor_widths`),
        so the program encoding is a function of the configuration.
    external_weights : bool
        Weight rows live outside the accelerator (e.g. iCE40 SPRAM), reached through the
        top-level ``w_req`` / ``w_rsp`` weight stream and ``w_write`` port instead of an
        internal memory.
    writeback_cycles : int
        Cycles the write-back stage spends on a row of ``P`` lane values: it handles
        ``lanes / writeback_cycles`` lanes per cycle (one LIF neuron and one residual adder per
        lane it handles), overlapped with the next row's gather (a power of two dividing
        ``lanes``; 1: every lane at once). The cycle model follows it
        (:func:`sdtforge.sim.cycles.predict`).
    weight_tile_rows : int
        The largest weight tile (one output group's rows, :mod:`.weight_tiles`) that the tile
        prefetch in front of external weights was built for
        (:class:`~.weight_prefetch.WeightPrefetch`'s ``tile_rows``; a board's ``--sdram``
        build); a model with a larger tile would be served wrong rows and is refused. 0: no
        prefetch.
    """

    lanes: int = 8
    width: int = 16
    weight_bits: int = 8
    acc_bits: int = 24
    theta_bits: int = 24
    shift_bits: int = 3
    stream_bits: int = 24
    logit_bits: int = 32
    program_depth: int = 512
    weights_depth: int = 4096
    biases_depth: int = 128
    thresholds_depth: int = 128
    shifts_depth: int = 128
    pixels_depth: int = 1024
    spikes_depth: int = 2048
    stream_depth: int = 512
    logits_depth: int = 16
    sdsa_channels: int = 64
    max_tokens: int = 64
    sdsa_shift: int = 1
    coord_bits: int = 8
    step_bits: int = 8
    group_bits: int = 8
    word_bits: int = 8
    channel_bits: int = 12
    external_weights: bool = False
    writeback_cycles: int = 1
    weight_tile_rows: int = 0

    def __post_init__(self):
        # A wrong type is a programming error (TypeError; ``from_json`` turns it into a
        # UserError for a config file); a wrong value is the user's option (UserError).
        if not isinstance(self.external_weights, bool):
            raise TypeError(f"AccelConfig.external_weights must be a bool, not "
                            f"{self.external_weights!r}")
        for f in fields(self):
            if f.name == "external_weights":
                continue
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"AccelConfig.{f.name} must be an integer, not {value!r}")
            if value < (0 if f.name in ("sdsa_shift", "weight_tile_rows") else 1):
                raise UserError(f"{f.name} must be positive, not {value!r}")
        check_lanes_width(self.lanes, self.width)
        c = self.writeback_cycles
        if c & (c - 1) or self.lanes % c:
            raise UserError(f"writeback_cycles must be a power of two dividing lanes "
                            f"({self.lanes!r}), not {c!r}")
        if self.logit_bits > RESULT_WORD_BITS:
            raise UserError(f"logit_bits ({self.logit_bits!r}) must be at most "
                            f"{RESULT_WORD_BITS}, the result stream's word")
        if self.sdsa_channels % self.width:
            raise UserError(f"sdsa_channels ({self.sdsa_channels!r}) must be a multiple of the "
                            f"word width ({self.width!r})")

    def lane_layout(self, memory):
        """The :class:`~amaranth.lib.data.ArrayLayout` of one row of ``memory``.

        The accelerator builds its memories (and checks its units' memories) with these
        layouts, and the compiler packs every row through them (:func:`pack_memory_row`): lane
        ``l`` of a ``P``-lane row of ``b``-bit values is bits ``[l·b, (l+1)·b)``.
        """
        return _lane_layout(self, memory)

    def lane_format(self, memory):
        """``(lanes, bits per lane, signed)`` of one row of ``memory`` (lowest lane first)."""
        layout = self.lane_layout(memory)
        shape = layout.elem_shape
        return layout.length, shape.width, shape.signed

    def row_bits(self, memory):
        """Width in bits of one row of ``memory``."""
        return self.lane_layout(memory).size

    def depth(self, memory):
        """Rows of ``memory``."""
        return getattr(self, f"{memory}_depth")

    def to_json(self):
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text):
        """The configuration saved by :meth:`to_json`; a malformed one is a :class:`UserError`."""
        try:
            values = json.loads(text)
        except ValueError as exc:
            raise UserError(f"the hardware config is not valid JSON: {exc}") from None
        if not isinstance(values, dict):
            raise UserError("the hardware config must be a JSON object of AccelConfig fields")
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise UserError(f"the hardware config has unknown fields {', '.join(unknown)}")
        try:
            return cls(**values)
        except TypeError as exc:
            raise UserError(f"the hardware config is invalid: {exc}") from None


@functools.lru_cache(maxsize=256)
def _lane_layout(config, memory):
    p = config.lanes
    elem, lanes = {
        "program": (unsigned(PROGRAM_WORD_BITS), 1), "weights": (signed(config.weight_bits), p),
        "biases": (signed(config.acc_bits), p), "thresholds": (signed(config.theta_bits), p),
        "shifts": (unsigned(config.shift_bits), p), "pixels": (unsigned(8), 1),
        "spikes": (unsigned(1), config.width), "stream": (signed(config.stream_bits), p),
        "logits": (signed(config.logit_bits), p),
    }[memory]
    return data.ArrayLayout(elem, lanes)


#: The largest lane count and word width the generators are run at (``generate`` takes about
#: 20 s at either bound; far larger values build Python expressions too deep to elaborate).
MAX_LANES = 128
MAX_WIDTH = 512


def check_lanes_width(lanes, width):
    """Refuse a lane count / word width the hardware cannot have (:class:`UserError`)."""
    for name, value in (("lanes", lanes), ("width", width)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an integer, not {value!r}")
        if value < 1 or value & (value - 1):
            raise UserError(f"{name} must be a power of two, not {value!r}")
    if width < 8:
        raise UserError(f"width must be at least 8, not {width!r}")
    if lanes > MAX_LANES or width > MAX_WIDTH:
        raise UserError(f"lanes and width are at most {MAX_LANES} and {MAX_WIDTH}, "
                        f"not {lanes!r} and {width!r}")
    if lanes > width:
        raise UserError(f"lanes ({lanes!r}) must not exceed the word width ({width!r})")


def writeback_cycles(lanes, writeback_lanes):
    """``AccelConfig.writeback_cycles`` for a write-back stage of ``writeback_lanes`` lanes
    (``None``: all ``lanes``); refuse a count that is not a power of two dividing ``lanes``
    (:class:`UserError`)."""
    if writeback_lanes is None:
        return 1
    if writeback_lanes < 1 or lanes % writeback_lanes or writeback_lanes & (writeback_lanes - 1):
        raise UserError(f"the write-back's lanes must be a power of two dividing the lanes "
                        f"({lanes}), not {writeback_lanes!r}")
    return lanes // writeback_lanes


@dataclass
class Compiled:
    """A compiled model.

    Attributes
    ----------
    config : AccelConfig
        The hardware it was compiled for.
    program : list of dict
        One dict per operation: ``op`` and every field of the operation's view
        (:data:`~.accel_isa.OP_VIEWS`; ``op``/``mode`` as enum members).
    images : dict of str to list of int
        Row values per memory (``program``, ``weights``, ``biases``, ``thresholds``,
        ``shifts``, ``pixels``); lanes packed by :func:`pack_row`.
    needed : dict of str to int
        Rows each memory needs for this model.
    field_bits : dict of str to int
        The loop-counter and channel-count widths the program needs (``coord_bits``,
        ``step_bits``, ``group_bits``, ``word_bits``, ``channel_bits``; see
        :class:`AccelConfig`).
    names : list of str
        The IR layer each operation comes from.
    pixel_layout : dict
        ``height``, ``width``, ``channels``, ``shx``, ``shy``, ``pad_base``.
    num_classes : int
    """

    config: AccelConfig
    program: list
    images: dict
    needed: dict
    names: list
    pixel_layout: dict
    num_classes: int
    maps: dict = field(default_factory=dict)
    field_bits: dict = field(default_factory=dict)

    def listing(self):
        """Human-readable program listing, one line per descriptor (its view's fields)."""
        lines = []
        for i, (d, name) in enumerate(zip(self.program, self.names, strict=True)):
            parts = [f"{k}={v.name if hasattr(v, 'name') else v}" for k, v in d.items()
                     if k not in ("op",) and v]
            lines.append(f"{i:3d} {d['op'].name:<10} {name:<22} {' '.join(parts)}")
        return "\n".join(lines) + "\n"


def pack_row(values, layout, *, what="row", hint=""):
    """Pack lane values into one row of ``layout`` (a :class:`~amaranth.lib.data.ArrayLayout`).

    Lane ``l`` goes to the offset ``layout`` gives it, through :func:`~.accel_isa.pack_field`:
    a value outside the lane's (signed or unsigned) range raises :class:`UserError` naming
    ``what``, the lane, the value and the range. Values past the last lane are an
    :class:`AssertionError`; missing ones are zero.
    """
    if len(values) > layout.length:
        raise AssertionError(f"{len(values)} lane values for a {layout.length}-lane row")
    bits, signed, offsets = _lanes(layout)
    row = 0
    for lane, v in enumerate(values):
        row |= pack_field(v, bits, signed=signed, what=f"{what} lane {lane}",
                          hint=hint) << offsets[lane]
    return row


@functools.lru_cache(maxsize=256)
def _lanes(layout):
    """``(bits, signed, offsets)`` of an ArrayLayout's lanes (its own offsets, not recomputed)."""
    shape = layout.elem_shape
    return shape.width, shape.signed, tuple(f.offset for _, f in layout)


#: Which :class:`AccelConfig` field sets the lane width of each memory's rows.
_LANE_WIDTH_FIELD = {"weights": "weight_bits", "biases": "acc_bits", "thresholds": "theta_bits",
                     "shifts": "shift_bits", "stream": "stream_bits", "logits": "logit_bits"}


def pack_memory_row(config, memory, values, *, layer=None):
    """One row of ``memory`` from its lane values (:meth:`AccelConfig.lane_layout`), checked.

    ``layer`` names the IR layer the row belongs to in the error message.
    """
    layout = config.lane_layout(memory)
    if len(values) > layout.length:
        raise AssertionError(f"{len(values)} lane values for a {layout.length}-lane {memory} "
                             f"row")
    where = f"layer {layer}: " if layer else ""
    option = _LANE_WIDTH_FIELD.get(memory)
    hint = (f"; the {memory} lanes are {option}={layout.elem_shape.width} bits wide: use a "
            f"configuration with a larger {option}, or correct the model's values"
            if option else "")
    return pack_row(values, layout, what=f"{where}{memory} row", hint=hint)


def encode_descriptor(d, config, layer=None):
    """The descriptor ``d`` of ``config`` as one integer, built with its view's ``const``.

    ``d`` holds ``op`` (an :class:`~.accel_isa.Op`) and fields of that operation's view
    (:data:`~.accel_isa.OP_VIEWS`; a missing field is zero, a field the view does not have is
    an :class:`AssertionError`). Every value is range-checked first
    (:func:`~.accel_isa.pack_field`: a :class:`UserError` naming ``layer``, the operation, the
    field, the value and the range); ``layer`` names the IR layer of the operation.
    """
    op = Op(d["op"])
    view = op_view(config, op)
    extra = sorted(set(d) - {"op"} - set(OP_VIEWS[op]))
    if extra:
        raise AssertionError(f"the {op.name} descriptor has no field {', '.join(extra)}")
    where = f"layer {layer}: " if layer else ""
    values = {"op": op}
    for name, f in view:
        if name == "op":
            continue
        value = d.get(name, 0)
        shape = Shape.cast(f.shape)
        pack_field(value.value if isinstance(value, Enum) else value, shape.width,
                   signed=shape.signed, what=f"{where}{op.name} descriptor field {name!r}",
                   hint="; the accelerator's program encoding cannot express this model")
        values[name] = value
    return view.const(values).as_bits()


# ---------------------------------------------------------------------------------------------
# Compilation


class _Builder:
    """State of one compilation; ``rows=False`` plans only (counts rows, packs none)."""

    def __init__(self, model, cfg, rows=True):
        self.m = model
        self.cfg = cfg
        self.rows = rows
        self.T = int(model.config["T"])
        self.ops = []       # (descriptor dict, name, reads, writes)
        self.weights = []
        self.biases = []
        self.thresholds = []
        self.shifts = []
        self.maps = {}      # name -> (channels, h, w)
        self.layer = None   # name of the IR layer being compiled (for error messages)

    def row(self, memory, values):
        """One checked row of ``memory`` for the current layer (:func:`pack_memory_row`)."""
        if not self.rows:
            return 0
        return pack_memory_row(self.cfg, memory, values, layer=self.layer)

    # -- parameter rows ------------------------------------------------------------------------
    def prows(self, cout, bias=None, theta=None, shift=None):
        """Append one row per group to the bias / threshold / shift images; return ``prow``."""
        p = self.cfg.lanes
        g = _ceil(cout, p)
        prow = len(self.biases)

        def lanes(vec, pad):
            out = np.full(g * p, pad, np.int64)
            if vec is not None:
                out[:cout] = np.asarray(vec, np.int64)
            return out.reshape(g, p)

        # A padded lane has zero weights and bias, so its sum is 0: θ = 1 keeps it silent.
        for name, vec, pad in (("biases", bias, 0), ("thresholds", theta, 1),
                               ("shifts", shift, 0)):
            for row in lanes(vec, pad):
                getattr(self, name).append(self.row(name, row))
        return prow

    def weight_rows(self, weight):
        """Rows ``g, tap, ci`` of ``P`` output channels; returns ``(w_base, w_gstride)``."""
        p = self.cfg.lanes
        w = np.asarray(weight, np.int64)
        if w.ndim == 2:
            w = w[:, :, None, None]
        cout, cin, kh, kw = w.shape
        g = _ceil(cout, p)
        if not self.rows:
            base = len(self.weights)
            self.weights.extend([0] * (g * kh * kw * cin))
            return base, kh * kw * cin
        pad = np.zeros((g * p, cin, kh, kw), np.int64)
        pad[:cout] = w
        base = len(self.weights)
        # Row (gi, tap, ci) holds lanes pad[gi·P + lane, ci, tap].
        lanes = pad.reshape(g, p, cin, kh * kw).transpose(0, 3, 2, 1).reshape(-1, p)
        self.weights.extend(self.many_rows("weights", lanes))
        return base, kh * kw * cin

    def many_rows(self, memory, lanes):
        """:meth:`row` of every row of ``lanes`` (``[rows, P]``), vectorized where it can be.

        The same checks and bits as one :meth:`row` per row: a value out of range gets the
        first offending row's :class:`UserError`; rows of up to 64 bits are packed with numpy
        at the lane offsets of the memory's layout.
        """
        layout = self.cfg.lane_layout(memory)
        bits, is_signed, offsets = _lanes(layout)
        lo, hi = field_range(bits, is_signed)
        bad = (lanes < lo) | (lanes > hi)
        if bad.any():
            self.row(memory, lanes[int(np.argmax(bad.any(axis=1)))])
            raise AssertionError("a lane out of range was not refused")
        if layout.size > 64:
            return [self.row(memory, row) for row in lanes]
        fields = lanes.astype(np.uint64) & np.uint64((1 << bits) - 1)
        shifted = fields << np.asarray(offsets[:lanes.shape[1]], np.uint64)
        return np.bitwise_or.reduce(shifted, axis=1).tolist() if len(lanes) else []

    # -- layouts -------------------------------------------------------------------------------
    def spike_layout(self, name):
        c, h, w = self.maps[name]
        words = _ceil(c, self.cfg.width)
        shx = _log2(words)
        shy = shx + _log2(w)
        sht = shy + _log2(h)
        return {"words": words, "shx": shx, "shy": shy, "sht": sht,
                "size": self.T << sht}

    def stream_layout(self):
        d = int(self.m.config["embed_dims"])
        th, tw = ir.expected_geometry(self.m.config)["token_hw"]
        groups = _ceil(d, self.cfg.lanes)
        shx = _log2(groups)
        shy = shx + _log2(tw)
        sht = shy + _log2(th)
        return {"words": groups, "shx": shx, "shy": shy, "sht": sht, "size": self.T << sht,
                "h": th, "w": tw}

    def add(self, d, name, reads=(), writes=()):
        d.setdefault("steps", self.T)
        self.ops.append((d, name, tuple(reads), tuple(writes)))

    def spike_in(self, d, name):
        lay = self.spike_layout(name)
        c, h, w = self.maps[name]
        d.update(cin=c, words=lay["words"], in_h=h, in_w=w, in_shx=lay["shx"],
                 in_shy=lay["shy"], in_sht=lay["sht"])

    def spike_out(self, d, name):
        lay = self.spike_layout(name)
        d.update(out_shx=lay["shx"], out_shy=lay["shy"], out_sht=lay["sht"])

    def stream_in(self, d):
        lay = self.stream_layout()
        d.update(in_h=lay["h"], in_w=lay["w"], in_shx=lay["shx"], in_shy=lay["shy"],
                 in_sht=lay["sht"], in_base=0)

    def stream_out(self, d):
        lay = self.stream_layout()
        d.update(out_shx=lay["shx"], out_shy=lay["shy"], out_sht=lay["sht"], out_base=0)


#: The compile pass: one handler per layer kind, ``handler(builder, layer)``; each appends its
#: descriptors (``builder.add``) and parameter rows. ``docs/extending.md`` shows how to add one.
COMPILERS = Registry("compile")


def _conv_spiking(b, layer, pixel):
    """PIXEL or spike CONV → LIF → spike map, with an OR pool op when ``layer.pool``."""
    cout, h, w = layer.out_channels, layer.height, layer.width
    target = f"{layer.output}.unpooled" if layer.pool else layer.output
    b.maps[target] = (cout, h, w)
    w_base, w_gstride = b.weight_rows(layer.weight)
    prow = b.prows(cout, bias=layer.bias, theta=layer.theta)
    d = {"op": Op.PIXEL if pixel else Op.CONV, "mode": Mode.SPIKE, "k3": 1,
         "groups": _ceil(cout, b.cfg.lanes), "out_h": h, "out_w": w,
         "w_base": w_base, "w_gstride": w_gstride, "prow": prow}
    if pixel:
        c = layer.in_channels
        # k_base of a PIXEL descriptor is the pixel memory's zero-point (pad) base.
        d.update(cin=c, words=c, in_h=h, in_w=w, in_shx=_log2(c),
                 in_shy=_log2(c) + _log2(w), in_base=0,
                 k_base=_pow2(h) << (_log2(c) + _log2(w)))
        reads = ()
    else:
        b.spike_in(d, layer.input)
        reads = (layer.input,)
    b.spike_out(d, target)
    b.add(d, layer.name, reads, (target,))
    if layer.pool:
        b.maps[layer.output] = (cout, (h - 1) // 2 + 1, (w - 1) // 2 + 1)
        p = {"op": Op.POOL_OR}
        b.spike_in(p, target)
        b.spike_out(p, layer.output)
        c, ho, wo = b.maps[layer.output]
        p.update(groups=p["words"], out_h=ho, out_w=wo)
        b.add(p, layer.name + ".pool", (target,), (layer.output,))


def _stream_conv(b, layer, k3):
    cout = layer.out_channels
    mode = Mode.SET if getattr(layer, "mode", "add") == "set" else Mode.ADD
    pool = bool(getattr(layer, "pool", False))
    if pool and mode != Mode.SET:
        raise UserError(f"layer {layer.name}: an integer max pool is only supported on the "
                        f"stream-initializing conv; re-quantize without it")
    w_base, w_gstride = b.weight_rows(layer.weight)
    prow = b.prows(cout, bias=layer.bias, shift=layer.shift)
    d = {"op": Op.CONV, "mode": mode, "k3": int(k3), "pool": int(pool),
         "groups": _ceil(cout, b.cfg.lanes), "w_base": w_base, "w_gstride": w_gstride,
         "prow": prow}
    b.spike_in(d, layer.input)
    lay = b.stream_layout()
    # A pooled conv iterates its *input* positions: each conv result is computed once and
    # max-merged into the (at most 4) pooled windows that contain it.
    if pool:
        d.update(out_h=d["in_h"], out_w=d["in_w"])
    else:
        d.update(out_h=lay["h"], out_w=lay["w"])
    b.stream_out(d)
    b.add(d, layer.name, (layer.input,), ())


@COMPILERS.register("stream_lif")
def _stream_lif(b, layer):
    d_ = int(b.m.config["embed_dims"])
    lay = b.stream_layout()
    b.maps[layer.output] = (d_, lay["h"], lay["w"])
    prow = b.prows(d_, theta=layer.theta)
    d = {"op": Op.STREAM_LIF, "mode": Mode.SPIKE, "groups": _ceil(d_, b.cfg.lanes),
         "out_h": lay["h"], "out_w": lay["w"], "prow": prow, "cin": d_}
    b.stream_in(d)
    b.spike_out(d, layer.output)
    b.add(d, layer.name, (), (layer.output,))


@COMPILERS.register("conv1x1")
def _conv1x1(b, layer):
    _, h, w = b.maps[layer.input]
    b.maps[layer.output] = (layer.out_channels, h, w)
    w_base, w_gstride = b.weight_rows(layer.weight)
    prow = b.prows(layer.out_channels, bias=layer.bias, theta=layer.theta)
    d = {"op": Op.CONV, "mode": Mode.SPIKE, "groups": _ceil(layer.out_channels,
                                                             b.cfg.lanes),
         "out_h": h, "out_w": w, "w_base": w_base, "w_gstride": w_gstride, "prow": prow}
    b.spike_in(d, layer.input)
    b.spike_out(d, layer.output)
    b.add(d, layer.name, (layer.input,), (layer.output,))


@COMPILERS.register("stream_conv1x1")
def _stream_conv1x1(b, layer):
    w_base, w_gstride = b.weight_rows(layer.weight)
    prow = b.prows(layer.out_channels, bias=layer.bias, shift=layer.shift)
    _, h, w = b.maps[layer.input]
    d = {"op": Op.CONV, "mode": Mode.ADD, "groups": _ceil(layer.out_channels,
                                                           b.cfg.lanes),
         "out_h": h, "out_w": w, "w_base": w_base, "w_gstride": w_gstride, "prow": prow}
    b.spike_in(d, layer.input)
    b.stream_out(d)
    b.add(d, layer.name, (layer.input,), ())


@COMPILERS.register("sdsa")
def _sdsa(b, layer):
    if layer.shift != b.cfg.sdsa_shift:
        raise UserError(f"layer {layer.name}: SDSA mask shift {layer.shift} differs from "
                        f"the hardware's {b.cfg.sdsa_shift}; rebuild the hardware "
                        f"with sdsa_shift={layer.shift}")
    c, h, w = b.maps[layer.input]
    b.maps[layer.output] = (c, h, w)
    d = {"op": Op.SDSA, "theta": int(layer.theta)}
    b.spike_in(d, layer.input)
    b.spike_out(d, layer.output)
    d.update(groups=d["words"], out_h=h, out_w=w)
    b.add(d, layer.name, (layer.input, layer.k, layer.v), (layer.output,))


@COMPILERS.register("head")
def _head(b, layer):
    d_ = layer.channels
    b.maps[layer.output] = (d_, 1, 1)
    prow = b.prows(d_, theta=layer.theta)
    d = {"op": Op.HEAD_SUM, "mode": Mode.SPIKE, "groups": _ceil(d_, b.cfg.lanes),
         "out_h": 1, "out_w": 1, "prow": prow, "cin": d_}
    b.stream_in(d)
    b.spike_out(d, layer.output)
    b.add(d, layer.name + ".sum", (), (layer.output,))
    w_base, w_gstride = b.weight_rows(layer.weight)
    prow = b.prows(layer.num_classes, bias=layer.bias)
    d = {"op": Op.CONV, "mode": Mode.LOGIT, "groups": _ceil(layer.num_classes,
                                                             b.cfg.lanes),
         "out_h": 1, "out_w": 1, "w_base": w_base, "w_gstride": w_gstride, "prow": prow}
    b.spike_in(d, layer.output)
    b.add(d, layer.name + ".linear", (layer.output,), ())
    b.add({"op": Op.END, "cin": layer.num_classes, "steps": 0}, "end")


@COMPILERS.register("conv3x3_pixel")
def _pixel_conv(b, layer):
    _conv_spiking(b, layer, pixel=True)


@COMPILERS.register("conv3x3_spike")
def _spike_conv(b, layer):
    _conv_spiking(b, layer, pixel=False)


@COMPILERS.register("stream_conv3x3")
def _stream_conv3x3(b, layer):
    _stream_conv(b, layer, k3=True)


def _allocate(builder):
    """First-fit placement of spike maps by liveness; returns ``(bases, peak words)``."""
    first, last = {}, {}
    for i, (_, _, reads, writes) in enumerate(builder.ops):
        for name in writes:
            first.setdefault(name, i)
            last.setdefault(name, i)
        for name in reads:
            last[name] = i
    placed = []     # (start, end, first, last)
    bases = {}
    for name in sorted(first, key=lambda n: (first[n], n)):
        size = builder.spike_layout(name)["size"]
        lo, hi = first[name], last[name]
        clashes = sorted((s, e) for s, e, f, l_ in placed if not (l_ < lo or f > hi))
        addr = 0
        for s, e in clashes:
            if addr + size <= s:
                break
            addr = max(addr, e)
        bases[name] = addr
        placed.append((addr, addr + size, lo, hi))
    peak = max((e for _, e, _, _ in placed), default=0)
    return bases, peak


def derive_config(model, lanes=8, width=16, writeback_lanes=None):
    """The smallest :class:`AccelConfig` (given ``lanes`` and ``width``) that runs ``model``.

    ``writeback_lanes``: lanes the write-back stage handles per cycle (a power of two; by
    default all ``lanes``), i.e. ``writeback_cycles = lanes / writeback_lanes``.

    Every memory gets at least 2 rows, so every memory address is at least one bit wide. The
    loop-counter and channel widths, and with the memory depths every descriptor field's
    width, follow from the model (:func:`~.accel_isa.descriptor_widths`).
    """
    check_lanes_width(lanes, width)
    base = AccelConfig(lanes=lanes, width=width,
                       writeback_cycles=writeback_cycles(lanes, writeback_lanes),
                       **derive_config_widths(model, lanes, width))
    plan = _plan(model, base, rows=False)
    cfg = AccelConfig(**{**asdict(base), **plan.field_bits,
                         **{f"{k}_depth": max(v, 2) for k, v in plan.needed.items()}})
    # The program's size depends on the descriptor's, which the other fields fix.
    return replace(cfg, program_depth=max(len(plan.program) * descriptor_words(cfg), 2))


_WORDS_CACHE = {}


def descriptor_words_for(model, lanes=8, width=16):
    """Program words per descriptor on the configuration :func:`derive_config` gives (cached).

    What the cycle model needs (a descriptor fetch takes one cycle per word) without a
    compilation: the descriptor layout depends on the model's shape (its config) only, never
    on its values, so the answer is cached per shape, ``lanes`` and ``width``.
    """
    key = (json.dumps(model.config, sort_keys=True, default=str), int(lanes), int(width))
    if key not in _WORDS_CACHE:
        if len(_WORDS_CACHE) >= 64:
            _WORDS_CACHE.clear()
        _WORDS_CACHE[key] = descriptor_words(derive_config(model, lanes, width))
    return _WORDS_CACHE[key]


#: The builder's descriptor keys (the generic names ``_Builder`` and the layer handlers set)
#: that an operation's view (:data:`~.accel_isa.OP_VIEWS`) names otherwise; ``None``: a key
#: the operation does not read (``spike_in`` / ``stream_in`` set it for every map read, or
#: it repeats another field), left out of its descriptor. Other keys keep their names.
_VIEW_KEYS = {
    Op.END: {"cin": "classes", "steps": None},
    Op.CONV: {"out_h": "pos_h", "out_w": "pos_w"},
    Op.PIXEL: {"out_h": "pos_h", "out_w": "pos_w", "cin": "channels", "in_h": "height",
               "in_w": "width", "in_shx": "pix_shx", "in_shy": "pix_shy",
               "k_base": "pad_base", "in_base": None},
    Op.STREAM_LIF: {"out_h": "pos_h", "out_w": "pos_w", "cin": None, "in_h": None,
                    "in_w": None},
    Op.SDSA: {"in_h": "tokens_h", "in_w": "tokens_w", "in_base": "q_base", "groups": None,
              "out_h": None, "out_w": None},
    Op.POOL_OR: {"groups": "words", "words": None, "cin": None, "out_h": "pos_h",
                 "out_w": "pos_w"},
    Op.HEAD_SUM: {"out_h": "pos_h", "out_w": "pos_w", "in_h": "tokens_h", "in_w": "tokens_w",
                  "cin": None},
}


def _view_fields(d):
    """A builder descriptor ``d`` as its operation's view: ``op`` and every view field."""
    op = d["op"]
    keys = _VIEW_KEYS[op]
    out = {"op": op, **dict.fromkeys(OP_VIEWS[op], 0)}
    for key, value in d.items():
        name = keys.get(key, key)
        if key == "op" or name is None:
            continue
        if name not in OP_VIEWS[op]:
            raise AssertionError(f"the {op.name} descriptor has no field for {key!r}")
        out[name] = value
    return out


def _plan(model, cfg, rows=True):
    """Descriptors (view dicts), memory rows and sizes of ``model`` on ``cfg``; no program.

    With ``rows=False`` no row is packed (the weight, bias, threshold and shift images hold
    zeros), which is all :func:`derive_config` needs.
    """
    b = _Builder(model, cfg, rows)
    for layer in model.layers:
        b.layer = layer.name
        COMPILERS[layer.KIND](b, layer)
    bases, peak = _allocate(b)
    for d, _, reads, writes in b.ops:
        if d["op"] in (Op.CONV, Op.POOL_OR, Op.SDSA) and reads:
            d["in_base"] = bases[reads[0]]
        if d["op"] == Op.SDSA:
            d["k_base"], d["v_base"] = bases[reads[1]], bases[reads[2]]
        if writes:
            d["out_base"] = bases[writes[0]]
    c = int(model.config["in_channels"])
    h, w = (int(v) for v in model.config["img_size"])
    shx, shy = _log2(c), _log2(c) + _log2(w)
    pad_base = _pow2(h) << shy
    pixel_layout = {"height": h, "width": w, "channels": c, "shx": shx, "shy": shy,
                    "pad_base": pad_base}
    # The pixel memory's zero-point rows belong to the first (pixel) layer.
    zp = [pack_memory_row(cfg, "pixels", [v], layer=model.layers[0].name)
          for v in model.zero_points]
    stream = b.stream_layout()
    nc = int(model.config["num_classes"])
    program = [_view_fields(d) for d, _, _, _ in b.ops]
    images = {"weights": b.weights, "biases": b.biases, "thresholds": b.thresholds,
              "shifts": b.shifts, "pixels": zp}
    needed = {
        "weights": len(b.weights), "biases": len(b.biases), "thresholds": len(b.thresholds),
        "shifts": len(b.shifts), "pixels": pad_base + _pow2(c), "spikes": peak,
        "stream": stream["size"], "logits": _ceil(nc, cfg.lanes),
    }
    return Compiled(config=cfg, program=program, images=images, needed=needed,
                    names=[name for _, name, _, _ in b.ops], pixel_layout=pixel_layout,
                    num_classes=nc, maps={k: (bases[k],) + b.maps[k] for k in bases},
                    field_bits=_field_bits(program))


def _compile(model, cfg):
    """Plan ``model`` on ``cfg``, check that it fits, then encode its program."""
    compiled = _plan(model, cfg)
    _check_capacity(compiled.field_bits, cfg)
    words = descriptor_words(cfg)
    compiled.needed["program"] = len(compiled.program) * words
    for name, _ in MEMORIES:
        need, have = compiled.needed[name], cfg.depth(name)
        if need > have:
            bits = cfg.row_bits(name)
            raise UserError(
                f"the model needs {need} rows ({need * bits} bits) of the {name} memory but "
                f"the hardware has {have} rows ({have * bits} bits); use a larger "
                f"configuration or a smaller model")
    if cfg.weight_tile_rows:
        from .weight_tiles import max_tile_rows

        tile = max_tile_rows(compiled)
        if tile > cfg.weight_tile_rows:
            raise UserError(
                f"the model's largest weight tile has {tile} rows but the hardware's tile "
                f"prefetch holds tiles of up to {cfg.weight_tile_rows}; build for this model "
                f"(build --sdram)")
    # Every descriptor field now fits (its width follows the widths and depths just checked);
    # encode_descriptor still checks each value.
    compiled.images["program"] = [
        pack_memory_row(cfg, "program", [w], layer=name)
        for d, name in zip(compiled.program, compiled.names, strict=True)
        for w in program_words(encode_descriptor(d, cfg, layer=name), words)]
    return compiled


#: The :class:`AccelConfig` width each counted header field of the descriptor needs: a loop
#: counter over the field's count (the field is one bit wider), or the channel count itself.
_NEEDS = {"out_h": "coord_bits", "out_w": "coord_bits", "in_h": "coord_bits",
          "in_w": "coord_bits", "steps": "step_bits", "groups": "group_bits",
          "words": "word_bits", "cin": "channel_bits"}


def _field_bits(program):
    """The smallest counter and channel widths that run ``program`` (view dicts)."""
    need = dict.fromkeys(("coord_bits", "step_bits", "group_bits", "word_bits"),
                         _MIN_COUNTER_BITS)
    need["channel_bits"] = 1
    for d in program:
        for name, path in OP_VIEWS[d["op"]].items():
            key = _NEEDS.get(path)
            if key is None:
                continue
            value = int(d[name])
            bits = value.bit_length() if key == "channel_bits" else _counter_bits_for(value)
            need[key] = max(need[key], bits)
    return need


def derive_config_widths(model, lanes, width):
    """The width / capacity fields of :func:`derive_config` (no compilation)."""
    widths = {}
    for layer in model.layers:
        for k, v in layer.widths.items():
            widths.setdefault(k, []).append(int(v))
    n = model.tokens
    shifts = [int(v) for lay in model.layers if hasattr(lay, "shift")
              and isinstance(lay.shift, np.ndarray) for v in lay.shift]
    d = int(model.config["embed_dims"])
    return {
        "weight_bits": int(model.config.get("weight_bits", 8)),
        "acc_bits": max(widths["acc"] + widths.get("x", []) + widths.get("sum", [])
                        + [int(model.stream_bits) + n.bit_length()]),
        "theta_bits": max(widths["theta"] + [2]),
        "shift_bits": max(max(shifts, default=0).bit_length(), 1),
        "stream_bits": int(model.stream_bits),
        # Summed logits are as wide as the model's range needs (an IR without the figure gets
        # 32 bits, the result stream's word).
        "logit_bits": max(widths["logits"]) if "logits" in widths else 32,
        "sdsa_channels": _ceil(d, width) * width,
        "max_tokens": n,
    }


def _check_capacity(needs, config):
    """One :class:`UserError` for the first ``AccelConfig`` field below the model's need."""
    for key, need in needs.items():
        if need > getattr(config, key):
            raise UserError(f"the model needs {key}={need} but the hardware has "
                            f"{getattr(config, key)}; use a larger configuration")


def compile_model(model, config=None, *, lanes=8, width=16, writeback_lanes=None):
    """Compile an :class:`~sdtforge.quantize.ir.IntegerModel` (or an ``.sfm`` path).

    Parameters
    ----------
    model : IntegerModel or path
        The integer model.
    config : AccelConfig, optional
        Target hardware; a model that does not fit raises one :class:`UserError` naming the
        memory, the size needed and the size available. By default the smallest configuration
        with ``lanes``, ``width`` and ``writeback_lanes`` (:func:`derive_config`) is derived
        from the model.

    Returns
    -------
    Compiled
    """
    if not isinstance(model, ir.IntegerModel):
        model = ir.load(model)
    if config is None:
        config = derive_config(model, lanes=lanes, width=width, writeback_lanes=writeback_lanes)
    else:
        _check_capacity(derive_config_widths(model, config.lanes, config.width), config)
    return _compile(model, config)


def memory_table(compiled):
    """Rows of ``(memory, rows needed, row bits, bits needed, bits available)``."""
    cfg = compiled.config
    rows = []
    for name, _ in MEMORIES:
        bits = cfg.row_bits(name)
        rows.append((name, compiled.needed[name], bits, compiled.needed[name] * bits,
                     cfg.depth(name) * bits))
    return rows


def format_memory_table(compiled):
    """The memory table as text (what ``sdtforge generate`` prints)."""
    rows = memory_table(compiled)
    out = [f"{'memory':<11}{'rows':>7}{'row bits':>10}{'bits':>10}{'available':>11}"]
    for name, n, bits, total, avail in rows:
        out.append(f"{name:<11}{n:>7}{bits:>10}{total:>10}{avail:>11}")
    out.append(f"{'total':<11}{'':>7}{'':>10}{sum(r[3] for r in rows):>10}"
               f"{sum(r[4] for r in rows):>11}")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# Host side: load-stream bytes


def record_header(target, address, count):
    """The bytes of one load-record header (:data:`~.accel_isa.RECORD_HEADER`), checked."""
    out = bytearray()
    values = {"target": target.value, "address": address, "count": count}
    for name, nbytes in RECORD_HEADER:
        value = pack_field(values[name], 8 * nbytes,
                           what=f"load record {target.name}: header field {name!r}",
                           hint="; the load stream cannot address it")
        out += value.to_bytes(nbytes, "little")
    return bytes(out)


def load_stream_bytes(compiled):
    """The load-stream bytes that write every model memory (``docs/accelerator.md`` §2)."""
    cfg = compiled.config
    out = bytearray()
    for name, target in MEMORIES:
        if target is None:
            continue
        rows = compiled.images[name]
        address = compiled.pixel_layout["pad_base"] if name == "pixels" else 0
        if not rows:
            continue
        bits = cfg.row_bits(name)
        out += record_header(target, address, len(rows))
        for i, row in enumerate(rows):
            # The rows are packed already; a row of the wrong width is still refused here.
            out += pack_field(row, bits, what=f"load record {target.name}: row {i}").to_bytes(
                (bits + 7) // 8, "little")
    return bytes(out)


def image_order(images):
    """uint8 pixels ``[C, H, W]`` (or ``[H, W]``) → the pixel stream's bytes (HWC raster)."""
    a = np.asarray(images, np.uint8)
    if a.ndim == 2:
        a = a[None]
    return bytes(np.ascontiguousarray(a.transpose(1, 2, 0)).reshape(-1))

