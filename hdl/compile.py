"""Compiler: integer model (IR) → accelerator program, memory images and hardware config.

The output is plain data: a list of layer descriptors (one dict per operation, in the fields of
its view, :data:`~.accel_isa.OP_VIEWS`), one list of row values per memory, and an
:class:`AccelConfig`. The memory planner sizes every memory, checks the model against a given
configuration and prints a table; the host encoder turns the images into the load-stream bytes
of ``docs/accelerator.md`` §2. Same IR → same bytes.

The parts: :mod:`.accel_config` (the configuration), :mod:`.layer_compilers` (one handler per
layer kind, :data:`COMPILERS`), this module (planning, map placement, the program, the fit
check) and :mod:`.load_image` (every value packed into a hardware field through
:func:`~.accel_isa.pack_field`, so a value the field cannot hold is a
:class:`~sdtforge.errors.UserError` naming the layer, the field, the value and the range; the
load stream).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from sdtforge.errors import UserError
from sdtforge.quantize import ir

from .accel_config import (
    ENGINE_FIELDS,
    MEMORIES,
    MIN_COUNTER_BITS,
    AccelConfig,
    ceil_div,
    check_lanes_width,
    counter_bits,
    pixel_layout,
    pow2_at_least,
    writeback_cycles,
)
from .accel_isa import OP_VIEWS, Op, descriptor_words, program_words
from .layer_compilers import COMPILERS, Builder
from .load_image import (
    encode_descriptor,
    image_order,
    load_stream_bytes,
    pack_memory_row,
    pack_row,
    record_header,
)

# The configuration, the row packers and the load stream live in their own modules; this one
# is the compiler's entry point and names them all.
__all__ = ["AccelConfig", "Compiled", "compile_model", "load_stream_bytes", "pack_row",
           "pack_memory_row", "encode_descriptor", "record_header", "check_lanes_width",
           "memory_table", "descriptor_words_for", "writeback_cycles", "MEMORIES", "COMPILERS",
           "derive_config", "plan_memories", "image_order"]


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
        :func:`~.accel_config.pixel_layout`: ``height``, ``width``, ``channels``, ``frames``
        (``T`` for event frames, else 1), ``shx``, ``shy``, ``sht``, ``pad_base``.
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


def derive_config(model, lanes=8, width=16, writeback_lanes=None, **engine):
    """The smallest :class:`AccelConfig` (given ``lanes`` and ``width``) that runs ``model``.

    ``writeback_lanes``: lanes the write-back stage handles per cycle (a power of two; by
    default all ``lanes``), i.e. ``writeback_cycles = lanes / writeback_lanes``. ``engine``:
    the :class:`AccelConfig` fields that choose how the engine works rather than what it
    holds (:data:`ENGINE_FIELDS`: ``events``, ``stream_latency``, ``weight_latency``), as
    given.

    Every memory gets at least 2 rows, so every memory address is at least one bit wide. The
    loop-counter and channel widths, and with the memory depths every descriptor field's
    width, follow from the model (:func:`~.accel_isa.descriptor_widths`).
    """
    check_lanes_width(lanes, width)
    unknown = set(engine) - set(ENGINE_FIELDS)
    if unknown:
        raise TypeError(f"derive_config() got unexpected keyword arguments {sorted(unknown)}")
    base = AccelConfig(lanes=lanes, width=width,
                       writeback_cycles=writeback_cycles(lanes, writeback_lanes), **engine,
                       **derive_config_widths(model, lanes, width))
    plan = plan_memories(model, base, rows=False)
    cfg = AccelConfig(**{**asdict(base), **plan.field_bits, "pool_or": pool_or_mode(plan.program),
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


#: The builder's descriptor keys (the generic names ``Builder`` and the layer handlers set)
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


def plan_memories(model, cfg, rows=True):
    """Descriptors (view dicts), memory rows and sizes of ``model`` on ``cfg``; no program.

    With ``rows=False`` no row is packed (the weight, bias, threshold and shift images hold
    zeros), which is all :func:`derive_config` needs.
    """
    b = Builder(model, cfg, rows)
    for layer in model.layers:
        b.layer = layer.name
        COMPILERS[layer.KIND](b, layer)
    bases, peak = b.place_maps()
    for d, _, reads, writes in b.ops:
        if d["op"] in (Op.CONV, Op.POOL_OR, Op.SDSA) and reads:
            d["in_base"] = bases[reads[0]]
        if d["op"] == Op.SDSA:
            d["k_base"], d["v_base"] = bases[reads[1]], bases[reads[2]]
        if writes:
            d["out_base"] = bases[writes[0]]
        # No operation reads a spike map where it writes one: the spike memory has no
        # read/write collision logic (hdl.ram).
        spans = {n: (bases[n], bases[n] + b.spike_layout(n)["size"]) for n in (*reads, *writes)
                 if n in bases}
        for r in reads:
            for w in writes:
                if r in spans and w in spans:
                    (r0, r1), (w0, w1) = spans[r], spans[w]
                    assert r1 <= w0 or w1 <= r0, f"maps {r!r} and {w!r} overlap"
    c = int(model.config["in_channels"])
    h, w = (int(v) for v in model.config["img_size"])
    pixels = pixel_layout(c, h, w, ir.input_frames(model.config))
    pad_base = pixels["pad_base"]
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
        "shifts": len(b.shifts), "pixels": pad_base + pow2_at_least(c), "spikes": peak,
        "stream": stream["size"], "logits": ceil_div(nc, cfg.lanes) * cfg.writeback_cycles,
    }
    return Compiled(config=cfg, program=program, images=images, needed=needed,
                    names=[name for _, name, _, _ in b.ops], pixel_layout=pixels,
                    num_classes=nc, maps={k: (bases[k],) + b.maps[k] for k in bases},
                    field_bits=_field_bits(program))


def _compile(model, cfg):
    """Plan ``model`` on ``cfg``, check that it fits, then encode its program."""
    compiled = plan_memories(model, cfg)
    _check_capacity(compiled.field_bits, cfg)
    if pool_or_mode(compiled.program) > cfg.pool_or:
        raise UserError("the model has spike max-pools (POOL_OR) but the hardware was built "
                        "without the pool stage (pool_or=0); build it for this model")
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
                         MIN_COUNTER_BITS)
    need["channel_bits"] = 1
    for d in program:
        for name, path in OP_VIEWS[d["op"]].items():
            key = _NEEDS.get(path)
            if key is None:
                continue
            value = int(d[name])
            bits = value.bit_length() if key == "channel_bits" else counter_bits(value)
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
        "sdsa_channels": ceil_div(d, width) * width,
        "max_tokens": n,
        "sdsa_or": sdsa_or_mode(model),
        "event_frames": int(model.encoding == "events"),
        "dvs_head_channels": d // int(model.config["num_heads"]) if ir.config_dvs(model.config)
        else 0,
    }


def sdsa_or_mode(model):
    """``AccelConfig.sdsa_or`` for ``model``: 1 if every SDSA layer's mask is the stateless OR
    (the IR's ``stateless_or``; vacuously, a model without SDSA), else 0."""
    return int(all(lay.stateless_or for lay in model.layers
                   if lay.KIND in ("sdsa", "sdsa_dvs")))


def pool_or_mode(program):
    """``AccelConfig.pool_or`` for a compiled ``program`` (view dicts): 1 if an operation is a
    ``POOL_OR`` (a pooled spiking conv's max-pool, a DVS model's erosions), else 0."""
    return int(any(d["op"] == Op.POOL_OR for d in program))


def _check_capacity(needs, config):
    """One :class:`UserError` for the first ``AccelConfig`` field below the model's need."""
    for key, need in needs.items():
        if key == "sdsa_or":                # the OR unit runs OR models only
            if config.sdsa_or and not need:
                raise UserError("the model's SDSA masks are not all the stateless OR, but the "
                                "hardware was built with sdsa_or=1; build it for this model")
            continue
        if key == "event_frames" and need > config.event_frames:
            raise UserError("the model takes event frames but the hardware was built for "
                            "images (event_frames=0); build it for this model")
        if key == "dvs_head_channels":     # built for one head size, not at least one
            if need and need != config.dvs_head_channels:
                built = (f"for heads of {config.dvs_head_channels} channels"
                         if config.dvs_head_channels else "without DVS-mode attention")
                raise UserError(f"the model's DVS-mode attention has heads of {need} channels "
                                f"but the hardware was built {built}; build it for this model")
            continue
        if need > getattr(config, key):
            raise UserError(f"the model needs {key}={need} but the hardware has "
                            f"{getattr(config, key)}; use a larger configuration")


def compile_model(model, config=None, *, lanes=8, width=16, writeback_lanes=None, **engine):
    """Compile an :class:`~sdtforge.quantize.ir.IntegerModel` (or an ``.sfm`` path).

    Parameters
    ----------
    model : IntegerModel or path
        The integer model.
    config : AccelConfig, optional
        Target hardware; a model that does not fit raises one :class:`UserError` naming the
        memory, the size needed and the size available. By default the smallest configuration
        with ``lanes``, ``width``, ``writeback_lanes`` and the ``engine`` fields
        (:func:`derive_config`) is derived from the model.

    Returns
    -------
    Compiled
    """
    if not isinstance(model, ir.IntegerModel):
        model = ir.load(model)
    if config is None:
        config = derive_config(model, lanes=lanes, width=width, writeback_lanes=writeback_lanes,
                               **engine)
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
