"""Memory rows, descriptors and the load stream: the compiled model as the hardware reads it.

Every number the compiler writes into a field of the hardware — a descriptor field, a lane of
a memory row, a load-record header field — goes through :func:`~.accel_isa.pack_field`, so a
value the field cannot hold is a :class:`~sdtforge.errors.UserError` naming the layer, the
field, the value and the range, never a silently truncated bit pattern. The host side turns
the packed images into the load-stream bytes of ``docs/accelerator.md`` §2.
"""

from __future__ import annotations

import functools
from enum import Enum

import numpy as np
from amaranth.hdl import Shape

from .accel_config import MEMORIES
from .accel_isa import OP_VIEWS, RECORD_HEADER, Op, op_view, pack_field

__all__ = ["pack_row", "pack_memory_row", "encode_descriptor", "record_header",
           "load_stream_bytes", "image_order"]


def pack_row(values, layout, *, what="row", hint=""):
    """Pack lane values into one row of ``layout`` (a :class:`~amaranth.lib.data.ArrayLayout`).

    Lane ``l`` goes to the offset ``layout`` gives it, through :func:`~.accel_isa.pack_field`:
    a value outside the lane's (signed or unsigned) range raises :class:`UserError` naming
    ``what``, the lane, the value and the range. Values past the last lane are an
    :class:`AssertionError`; missing ones are zero.
    """
    if len(values) > layout.length:
        raise AssertionError(f"{len(values)} lane values for a {layout.length}-lane row")
    bits, signed, offsets = lane_fields(layout)
    row = 0
    for lane, v in enumerate(values):
        row |= pack_field(v, bits, signed=signed, what=f"{what} lane {lane}",
                          hint=hint) << offsets[lane]
    return row


@functools.lru_cache(maxsize=256)
def lane_fields(layout):
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
    """uint8 pixels ``[C, H, W]`` (or ``[H, W]``), or event frames ``[T, C, H, W]`` → the
    pixel stream's bytes (HWC raster; frames one after another)."""
    a = np.asarray(images, np.uint8)
    if a.ndim == 2:
        a = a[None]
    return bytes(np.ascontiguousarray(np.moveaxis(a, -3, -1)).reshape(-1))
