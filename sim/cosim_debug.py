"""Spike-map debugging for co-simulation: which layer's spikes first differ from the golden model.

:func:`spike_watch` lists, per spike-writing descriptor of a compiled program, the spike-memory
rows it writes; the cocotb bench reads those rows through the hierarchy (``spk`` memory) each
time the program counter leaves the descriptor. The descriptors are decoded from the program
image the accelerator loads, through the same per-operation views the controller reads
(:func:`~sdtforge.hdl.accel_isa.decode_descriptor`). :func:`compare_spikes` decodes them into
``[T, C, H, W]`` maps and compares them, in program order, with the golden model's recordings.
"""

import numpy as np

from sdtforge.hdl.accel_isa import (
    Mode,
    Op,
    decode_descriptor,
    descriptor_words,
    join_program_words,
)

from . import ops

__all__ = ["descriptors", "spike_watch", "compare_spikes"]


def _output_map(op, name, layers):
    """The spike-map name descriptor ``op`` (of IR layer ``name``) writes, or ``None``."""
    if name.endswith(".pool"):
        return layers[name[:-5]].output
    layer = layers.get(name)
    if op["op"] == Op.HEAD_SUM:
        return next(lay.output for lay in layers.values() if lay.KIND == "head")
    if layer is None:
        return None
    if op["op"] == Op.SDSA or (op["op"] in (Op.PIXEL, Op.CONV, Op.STREAM_LIF)
                                and op["mode"] == Mode.SPIKE):
        # A pooled conv's own descriptor writes the unpooled map; its POOL_OR the pooled one.
        return layer.output + ".unpooled" if getattr(layer, "pool", False) else layer.output
    return None


def descriptors(compiled):
    """The compiled program as the accelerator reads it: each descriptor decoded from the
    program image through its operation's view (a dict, :func:`decode_descriptor`)."""
    n = descriptor_words(compiled.config)
    words = compiled.images["program"]
    return [decode_descriptor(compiled.config, join_program_words(words[i:i + n]))
            for i in range(0, len(words), n)]


def spike_watch(compiled, model):
    """Per spike-writing descriptor: ``op`` index, map name, base, shifts and shape."""
    layers = {lay.name: lay for lay in model.layers}
    watch = []
    for i, (d, name) in enumerate(zip(descriptors(compiled), compiled.names, strict=True)):
        out = _output_map(d, name, layers)
        if out is None or out not in compiled.maps:
            continue
        base, c, h, w = compiled.maps[out]
        if base != d["out_base"]:
            raise AssertionError(f"descriptor {i} writes {out} at {d['out_base']}, planned at "
                                 f"{base}")
        sht = d["out_sht"]
        watch.append({"op": i, "map": out, "base": int(base), "rows": d["steps"] << sht,
                      "shx": d["out_shx"], "shy": d["out_shy"], "sht": sht,
                      "shape": [d["steps"], int(c), int(h), int(w)]})
    return watch


#: A map bit the RTL left undefined (``x``): never equal to a golden spike.
UNDEFINED = 2


def _decode(rows, entry, width):
    """The ``[T, C, H, W]`` map of a dump's rows (bit strings, most significant bit first;
    a bit that is not ``0`` or ``1`` decodes as :data:`UNDEFINED`)."""
    t_steps, c, h, w = entry["shape"]
    words = -(-c // width)
    out = np.zeros((t_steps, words * width, h, w), np.uint8)
    for t in range(t_steps):
        for y in range(h):
            for x in range(w):
                for k in range(words):
                    row = rows[(t << entry["sht"]) | (y << entry["shy"]) | (x << entry["shx"]) | k]
                    for b in range(width):
                        bit = row[len(row) - 1 - b]
                        out[t, k * width + b, y, x] = int(bit) if bit in "01" else UNDEFINED
    return out[:, :c]


def _golden_map(name, ref, image, pooled):
    key = name.removesuffix(".unpooled")
    s = np.asarray(ref.spikes[key])[:, image]
    s = s if s.ndim == 4 else s.reshape(s.shape[0], -1, 1, 1)
    return ops.spike_maxpool(s) if key in pooled and not name.endswith(".unpooled") else s


def compare_spikes(dumps, watch, ref, model, width):
    """Lines naming, per image, the first layer whose RTL spikes differ (or that all agree).

    ``dumps``: per image, ``{op index: [row, …]}`` as the bench read them (bit strings).
    """
    pooled = {lay.output for lay in model.layers if getattr(lay, "pool", False)}
    lines = []
    for image, dump in enumerate(dumps):
        for entry in watch:
            rows = dump.get(str(entry["op"]))
            if rows is None:
                lines.append(f"image {image}: descriptor {entry['op']} ({entry['map']}) was not "
                             f"read")
                break
            got = _decode(rows, entry, width)
            want = _golden_map(entry["map"], ref, image, pooled)
            if got.shape != want.shape or not np.array_equal(got, want):
                n = int((got != want).sum()) if got.shape == want.shape else -1
                lines.append(f"image {image}: spikes first differ at descriptor {entry['op']} "
                             f"({entry['map']}): {n} of {want.size} spikes differ")
                break
        else:
            lines.append(f"image {image}: all {len(watch)} spike maps match the golden model")
    return lines
