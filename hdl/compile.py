"""Compiler: integer model (IR) → accelerator program, memory images and hardware config.

The output is plain data: a list of layer descriptors (:data:`~.accel_isa.DESCRIPTOR`), one list
of row values per memory, and an :class:`AccelConfig`. The memory planner sizes every memory,
checks the model against a given configuration and prints a table; the host encoder turns the
images into the load-stream bytes of ``docs/accelerator.md`` §2. Same IR → same bytes.

Every number the compiler writes into a field of the hardware — a descriptor field, a lane of
a memory row, a load-record header field — goes through :func:`~.accel_isa.pack_field`, so a
value the field cannot hold is a :class:`~sdtforge.errors.UserError` naming the layer, the
field, the value and the range, never a silently truncated bit pattern.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

import numpy as np
from amaranth.utils import ceil_log2

from sdtforge.errors import UserError
from sdtforge.quantize import ir

from .accel_isa import (
    DESCRIPTOR_WORDS,
    PROGRAM_WORD_BITS,
    RECORD_HEADER,
    Mode,
    Op,
    Target,
    descriptor_fields,
    descriptor_words,
    pack_field,
)

__all__ = ["AccelConfig", "Compiled", "compile_model", "load_stream_bytes", "pack_row",
           "pack_memory_row", "encode_descriptor", "record_header", "check_lanes_width",
           "memory_table", "MEMORIES"]

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
        Rows of each memory (program: 16-bit words, ``DESCRIPTOR_WORDS`` per descriptor).
    sdsa_channels, max_tokens : int
        Largest SDSA width (a multiple of ``width``) and token count the SDSA unit supports.
    sdsa_shift : int
        The SDSA mask shift the SDSA unit is built with.
    coord_bits, step_bits, group_bits, word_bits : int
        Widths of the controller's loop counters: a map coordinate (the largest map side is
        at most ``2**coord_bits``), a time step, an output group (or word) and a word index
        within a position. The compiler derives the smallest that run the model; every
        counter, comparator and address-generator input is that wide (8 bits, the descriptor
        fields' width, runs every model the program encoding can express).
    external_weights : bool
        Weight rows live outside the accelerator (e.g. iCE40 SPRAM), reached through the
        top-level ``w_read`` / ``w_write`` ports instead of an internal memory.
    """

    lanes: int = 8
    width: int = 16
    weight_bits: int = 8
    acc_bits: int = 24
    theta_bits: int = 24
    shift_bits: int = 3
    stream_bits: int = 24
    logit_bits: int = 32
    program_depth: int = 32 * DESCRIPTOR_WORDS
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
    external_weights: bool = False

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
            if value < (0 if f.name == "sdsa_shift" else 1):
                raise UserError(f"{f.name} must be positive, not {value!r}")
        check_lanes_width(self.lanes, self.width)
        for name in ("coord_bits", "step_bits", "group_bits", "word_bits"):
            if getattr(self, name) > 8:
                raise UserError(f"{name} must be at most 8 (the descriptor's fields), not "
                                f"{getattr(self, name)!r}")
        if self.logit_bits > 32:
            raise UserError(f"logit_bits ({self.logit_bits!r}) must be at most 32, the result "
                            f"stream's word")
        if self.sdsa_channels % self.width:
            raise UserError(f"sdsa_channels ({self.sdsa_channels!r}) must be a multiple of the "
                            f"word width ({self.width!r})")

    def lane_format(self, memory):
        """``(lanes, bits per lane, signed)`` of one row of ``memory`` (lowest lane first)."""
        p = self.lanes
        return {
            "program": (1, PROGRAM_WORD_BITS, False), "weights": (p, self.weight_bits, True),
            "biases": (p, self.acc_bits, True), "thresholds": (p, self.theta_bits, True),
            "shifts": (p, self.shift_bits, False), "pixels": (1, 8, False),
            "spikes": (self.width, 1, False), "stream": (p, self.stream_bits, True),
            "logits": (p, self.logit_bits, True),
        }[memory]

    def row_bits(self, memory):
        """Width in bits of one row of ``memory``."""
        lanes, bits, _ = self.lane_format(memory)
        return lanes * bits

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


@dataclass
class Compiled:
    """A compiled model.

    Attributes
    ----------
    config : AccelConfig
        The hardware it was compiled for.
    program : list of dict
        Descriptor field values, one dict per operation (``op``/``mode`` as enum members).
    images : dict of str to list of int
        Row values per memory (``program``, ``weights``, ``biases``, ``thresholds``,
        ``shifts``, ``pixels``); lanes packed by :func:`pack_row`.
    needed : dict of str to int
        Rows each memory needs for this model.
    counter_bits : dict of str to int
        The loop-counter widths the program needs (``coord_bits``, ``step_bits``,
        ``group_bits``, ``word_bits``; see :class:`AccelConfig`).
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
    counter_bits: dict = field(default_factory=dict)

    def listing(self):
        """Human-readable program listing, one line per descriptor."""
        lines = []
        for i, (d, name) in enumerate(zip(self.program, self.names, strict=True)):
            parts = [f"{k}={v.name if hasattr(v, 'name') else v}" for k, v in d.items()
                     if k not in ("op",) and v]
            lines.append(f"{i:3d} {d['op'].name:<10} {name:<22} {' '.join(parts)}")
        return "\n".join(lines) + "\n"


def pack_row(values, bits, *, signed=True, what="row", hint=""):
    """Pack lane values, lowest lane first, ``bits`` per lane, into one integer.

    Every lane goes through :func:`~.accel_isa.pack_field`: a value outside the ``bits``-bit
    (signed or unsigned) range raises :class:`UserError` naming ``what``, the lane, the value
    and the range.
    """
    row = 0
    for lane, v in enumerate(values):
        row |= pack_field(v, bits, signed=signed, what=f"{what} lane {lane}",
                          hint=hint) << (lane * bits)
    return row


#: Which :class:`AccelConfig` field sets the lane width of each memory's rows.
_LANE_WIDTH_FIELD = {"weights": "weight_bits", "biases": "acc_bits", "thresholds": "theta_bits",
                     "shifts": "shift_bits", "stream": "stream_bits", "logits": "logit_bits"}


def pack_memory_row(config, memory, values, *, layer=None):
    """One row of ``memory`` from its lane values (:meth:`AccelConfig.lane_format`), checked.

    ``layer`` names the IR layer the row belongs to in the error message.
    """
    lanes, bits, signed = config.lane_format(memory)
    if len(values) > lanes:
        raise AssertionError(f"{len(values)} lane values for a {lanes}-lane {memory} row")
    where = f"layer {layer}: " if layer else ""
    option = _LANE_WIDTH_FIELD.get(memory)
    hint = (f"; the {memory} lanes are {option}={bits} bits wide: use a configuration with a "
            f"larger {option}, or correct the model's values" if option else "")
    return pack_row(values, bits, signed=signed, what=f"{where}{memory} row", hint=hint)


def encode_descriptor(d, layer=None):
    """The descriptor dict ``d`` as one integer (``DESCRIPTOR`` bit layout).

    Every field is range-checked (:func:`~.accel_isa.pack_field`); ``layer`` names the IR
    layer of the operation in the error message.
    """
    op = d.get("op")
    where = f"layer {layer}: " if layer else ""
    where += f"{op.name} " if hasattr(op, "name") else ""
    word = 0
    for name, offset, bits, signed in descriptor_fields():
        value = d.get(name, 0)
        value = value.value if hasattr(value, "value") else value
        word |= pack_field(value, bits, signed=signed,
                           what=f"{where}descriptor field {name!r}",
                           hint="; the accelerator's program encoding cannot express this "
                                "model") << offset
    return word


# ---------------------------------------------------------------------------------------------
# Compilation


class _Builder:
    def __init__(self, model, cfg):
        self.m = model
        self.cfg = cfg
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
        pad = np.zeros((g * p, cin, kh, kw), np.int64)
        pad[:cout] = w
        base = len(self.weights)
        for gi in range(g):
            for tap in range(kh * kw):
                for ci in range(cin):
                    lanes = pad[gi * p:(gi + 1) * p, ci, tap // kw, tap % kw]
                    self.weights.append(self.row("weights", lanes))
        return base, kh * kw * cin

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

    # -- layers --------------------------------------------------------------------------------
    def conv_spiking(self, layer, pixel):
        """PIXEL or spike CONV → LIF → spike map, with an OR pool op when ``layer.pool``."""
        cout, h, w = layer.out_channels, layer.height, layer.width
        target = f"{layer.output}.unpooled" if layer.pool else layer.output
        self.maps[target] = (cout, h, w)
        w_base, w_gstride = self.weight_rows(layer.weight)
        prow = self.prows(cout, bias=layer.bias, theta=layer.theta)
        d = {"op": Op.PIXEL if pixel else Op.CONV, "mode": Mode.SPIKE, "k3": 1,
             "groups": _ceil(cout, self.cfg.lanes), "out_h": h, "out_w": w,
             "w_base": w_base, "w_gstride": w_gstride, "prow": prow}
        if pixel:
            c = layer.in_channels
            # k_base of a PIXEL descriptor is the pixel memory's zero-point (pad) base.
            d.update(cin=c, words=c, in_h=h, in_w=w, in_shx=_log2(c),
                     in_shy=_log2(c) + _log2(w), in_base=0,
                     k_base=_pow2(h) << (_log2(c) + _log2(w)))
            reads = ()
        else:
            self.spike_in(d, layer.input)
            reads = (layer.input,)
        self.spike_out(d, target)
        self.add(d, layer.name, reads, (target,))
        if layer.pool:
            self.maps[layer.output] = (cout, (h - 1) // 2 + 1, (w - 1) // 2 + 1)
            p = {"op": Op.POOL_OR}
            self.spike_in(p, target)
            self.spike_out(p, layer.output)
            c, ho, wo = self.maps[layer.output]
            p.update(groups=p["words"], out_h=ho, out_w=wo)
            self.add(p, layer.name + ".pool", (target,), (layer.output,))

    def stream_conv(self, layer, k3):
        cout = layer.out_channels
        mode = Mode.SET if getattr(layer, "mode", "add") == "set" else Mode.ADD
        pool = bool(getattr(layer, "pool", False))
        if pool and mode != Mode.SET:
            raise UserError(f"layer {layer.name}: an integer max pool is only supported on the "
                            f"stream-initializing conv; re-quantize without it")
        w_base, w_gstride = self.weight_rows(layer.weight)
        prow = self.prows(cout, bias=layer.bias, shift=layer.shift)
        d = {"op": Op.CONV, "mode": mode, "k3": int(k3), "pool": int(pool),
             "groups": _ceil(cout, self.cfg.lanes), "w_base": w_base, "w_gstride": w_gstride,
             "prow": prow}
        self.spike_in(d, layer.input)
        lay = self.stream_layout()
        # A pooled conv iterates its *input* positions: each conv result is computed once and
        # max-merged into the (at most 4) pooled windows that contain it.
        if pool:
            d.update(out_h=d["in_h"], out_w=d["in_w"])
        else:
            d.update(out_h=lay["h"], out_w=lay["w"])
        self.stream_out(d)
        self.add(d, layer.name, (layer.input,), ())

    def stream_lif(self, layer):
        d_ = int(self.m.config["embed_dims"])
        lay = self.stream_layout()
        self.maps[layer.output] = (d_, lay["h"], lay["w"])
        prow = self.prows(d_, theta=layer.theta)
        d = {"op": Op.STREAM_LIF, "mode": Mode.SPIKE, "groups": _ceil(d_, self.cfg.lanes),
             "out_h": lay["h"], "out_w": lay["w"], "prow": prow, "cin": d_}
        self.stream_in(d)
        self.spike_out(d, layer.output)
        self.add(d, layer.name, (), (layer.output,))

    def conv1x1(self, layer):
        _, h, w = self.maps[layer.input]
        self.maps[layer.output] = (layer.out_channels, h, w)
        w_base, w_gstride = self.weight_rows(layer.weight)
        prow = self.prows(layer.out_channels, bias=layer.bias, theta=layer.theta)
        d = {"op": Op.CONV, "mode": Mode.SPIKE, "groups": _ceil(layer.out_channels,
                                                                 self.cfg.lanes),
             "out_h": h, "out_w": w, "w_base": w_base, "w_gstride": w_gstride, "prow": prow}
        self.spike_in(d, layer.input)
        self.spike_out(d, layer.output)
        self.add(d, layer.name, (layer.input,), (layer.output,))

    def stream_conv1x1(self, layer):
        w_base, w_gstride = self.weight_rows(layer.weight)
        prow = self.prows(layer.out_channels, bias=layer.bias, shift=layer.shift)
        _, h, w = self.maps[layer.input]
        d = {"op": Op.CONV, "mode": Mode.ADD, "groups": _ceil(layer.out_channels,
                                                               self.cfg.lanes),
             "out_h": h, "out_w": w, "w_base": w_base, "w_gstride": w_gstride, "prow": prow}
        self.spike_in(d, layer.input)
        self.stream_out(d)
        self.add(d, layer.name, (layer.input,), ())

    def sdsa(self, layer):
        if layer.shift != self.cfg.sdsa_shift:
            raise UserError(f"layer {layer.name}: SDSA mask shift {layer.shift} differs from "
                            f"the hardware's {self.cfg.sdsa_shift}; rebuild the hardware "
                            f"with sdsa_shift={layer.shift}")
        c, h, w = self.maps[layer.input]
        self.maps[layer.output] = (c, h, w)
        d = {"op": Op.SDSA, "theta": int(layer.theta)}
        self.spike_in(d, layer.input)
        self.spike_out(d, layer.output)
        d.update(groups=d["words"], out_h=h, out_w=w)
        self.add(d, layer.name, (layer.input, layer.k, layer.v), (layer.output,))

    def head(self, layer):
        d_ = layer.channels
        self.maps[layer.output] = (d_, 1, 1)
        prow = self.prows(d_, theta=layer.theta)
        d = {"op": Op.HEAD_SUM, "mode": Mode.SPIKE, "groups": _ceil(d_, self.cfg.lanes),
             "out_h": 1, "out_w": 1, "prow": prow, "cin": d_}
        self.stream_in(d)
        self.spike_out(d, layer.output)
        self.add(d, layer.name + ".sum", (), (layer.output,))
        w_base, w_gstride = self.weight_rows(layer.weight)
        prow = self.prows(layer.num_classes, bias=layer.bias)
        d = {"op": Op.CONV, "mode": Mode.LOGIT, "groups": _ceil(layer.num_classes,
                                                                 self.cfg.lanes),
             "out_h": 1, "out_w": 1, "w_base": w_base, "w_gstride": w_gstride, "prow": prow}
        self.spike_in(d, layer.output)
        self.add(d, layer.name + ".linear", (layer.output,), ())
        self.add({"op": Op.END, "cin": layer.num_classes, "steps": 0}, "end")


_HANDLERS = {
    "conv3x3_pixel": lambda b, lay: b.conv_spiking(lay, pixel=True),
    "conv3x3_spike": lambda b, lay: b.conv_spiking(lay, pixel=False),
    "stream_conv3x3": lambda b, lay: b.stream_conv(lay, k3=True),
    "stream_lif": lambda b, lay: b.stream_lif(lay),
    "conv1x1": lambda b, lay: b.conv1x1(lay),
    "sdsa": lambda b, lay: b.sdsa(lay),
    "stream_conv1x1": lambda b, lay: b.stream_conv1x1(lay),
    "head": lambda b, lay: b.head(lay),
}


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


def derive_config(model, lanes=8, width=16):
    """The smallest :class:`AccelConfig` (given ``lanes`` and ``width``) that runs ``model``.

    Every memory gets at least 2 rows, so every memory address is at least one bit wide.
    """
    check_lanes_width(lanes, width)
    base = AccelConfig(lanes=lanes, width=width, **derive_config_widths(model, lanes, width))
    compiled = _compile(model, base)
    return AccelConfig(**{**asdict(base), **compiled.counter_bits,
                          **{f"{k}_depth": max(v, 2) for k, v in compiled.needed.items()}})


def _compile(model, cfg):
    b = _Builder(model, cfg)
    for layer in model.layers:
        b.layer = layer.name
        _HANDLERS[layer.KIND](b, layer)
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
    program = [d for d, _, _, _ in b.ops]
    words = [pack_memory_row(cfg, "program", [w], layer=name) for d, name, _, _ in b.ops
             for w in descriptor_words(encode_descriptor(d, layer=name))]
    images = {
        "program": words,
        "weights": b.weights, "biases": b.biases, "thresholds": b.thresholds,
        "shifts": b.shifts, "pixels": zp,
    }
    needed = {
        "program": len(program) * DESCRIPTOR_WORDS, "weights": len(b.weights),
        "biases": len(b.biases), "thresholds": len(b.thresholds), "shifts": len(b.shifts),
        "pixels": pad_base + _pow2(c), "spikes": peak, "stream": stream["size"],
        "logits": _ceil(nc, cfg.lanes),
    }
    return Compiled(config=cfg, program=program, images=images, needed=needed,
                    names=[name for _, name, _, _ in b.ops], pixel_layout=pixel_layout,
                    num_classes=nc, maps={k: (bases[k],) + b.maps[k] for k in bases},
                    counter_bits=_counter_bits(program))


def _counter_bits(program):
    """The smallest loop-counter widths that run ``program`` (see :class:`AccelConfig`)."""
    def most(*keys):
        return max(int(d.get(k, 0)) for d in program for k in keys)

    return {"coord_bits": _counter_bits_for(most("in_h", "in_w", "out_h", "out_w")),
            "step_bits": _counter_bits_for(most("steps")),
            "group_bits": _counter_bits_for(most("groups")),
            "word_bits": _counter_bits_for(most("words"))}


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


def compile_model(model, config=None, *, lanes=8, width=16):
    """Compile an :class:`~sdtforge.quantize.ir.IntegerModel` (or an ``.sfm`` path).

    Parameters
    ----------
    model : IntegerModel or path
        The integer model.
    config : AccelConfig, optional
        Target hardware; a model that does not fit raises one :class:`UserError` naming the
        memory, the size needed and the size available. By default the smallest configuration
        with ``lanes`` and ``width`` is derived from the model.

    Returns
    -------
    Compiled
    """
    if not isinstance(model, ir.IntegerModel):
        model = ir.load(model)
    if config is None:
        config = derive_config(model, lanes=lanes, width=width)
    else:
        _check_capacity(derive_config_widths(model, config.lanes, config.width), config)
    compiled = _compile(model, config)
    _check_capacity(compiled.counter_bits, config)
    for name, _ in MEMORIES:
        need, have = compiled.needed[name], config.depth(name)
        if need > have:
            bits = config.row_bits(name)
            raise UserError(
                f"the model needs {need} rows ({need * bits} bits) of the {name} memory but "
                f"the hardware has {have} rows ({have * bits} bits); use a larger "
                f"configuration or a smaller model")
    return compiled


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

