"""Golden model: the bit-exact integer Spike-Driven Transformer in NumPy (never torch).

It executes an :class:`~sdtforge.quantize.ir.IntegerModel` layer by layer with the
per-operation functions of :mod:`sdtforge.sim.ops`, vectorized over the batch, following
``docs/integer-semantics.md``. Accumulations do not depend on the membrane state, so each layer
computes the accumulators of all ``T`` steps in one product and only the LIF runs step by step
(the accelerator's layer-outer, time-inner order gives the same result).

It also counts the work an event-driven engine does (spikes, synaptic accumulates, first-layer
MACs, SDSA mask operations, neuron updates, memory accesses) per layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sdtforge.errors import UserError
from sdtforge.quantize import ir

from . import ops

__all__ = ["GoldenResult", "run", "COUNT_KEYS"]

#: Keys of every layer's entry in :attr:`GoldenResult.counts`.
COUNT_KEYS = ("spikes", "acs", "macs", "mask_ops", "neuron_updates", "residual_adds",
              "mem_reads", "mem_writes")


@dataclass
class GoldenResult:
    """What :func:`run` returns.

    Attributes
    ----------
    logits : numpy.ndarray
        ``int64 [B, num_classes]``: per-step head outputs summed over ``T``.
    classes : numpy.ndarray
        ``int64 [B]``: argmax of ``logits``, lowest index on ties.
    spikes : dict of str to numpy.ndarray
        Only with ``spikes=True``: ``uint8`` 0/1, the float model's recording names and shapes
        (``[T, B, C, H, W]`` for maps and tokens, ``[T, B, D]`` for masks and ``head.lif``).
    counts : dict of str to dict
        Per layer name, totals over the batch of :data:`COUNT_KEYS` (Python ints).
    batch : int
        Number of images ``B`` (divide ``counts`` by it for per-image figures).
    """

    logits: np.ndarray
    classes: np.ndarray
    spikes: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    batch: int = 0

    def per_image(self):
        """``counts`` divided by the batch size (floats)."""
        return {name: {k: v / max(self.batch, 1) for k, v in c.items()}
                for name, c in self.counts.items()}

    def totals(self):
        """Per-image sums over all layers of every count key."""
        per = self.per_image()
        return {k: sum(c[k] for c in per.values()) for k in COUNT_KEYS}


def _lif(acc_seq, theta):
    """Run the integer LIF over the leading time axis of ``acc_seq`` (``ops.lif_step``)."""
    out = np.empty(acc_seq.shape, np.uint8)
    v = np.zeros(acc_seq.shape[1:], np.int64)
    for t in range(acc_seq.shape[0]):
        out[t], v = ops.lif_step(v, acc_seq[t], theta)
    return out


def _box_count(s):
    """For spike maps ``[..., C, H, W]``: Σ over spikes of the number of in-range output
    positions of a 3×3/pad-1 window each one touches (its fan-out per output channel)."""
    per_pos = s.sum(axis=-3, dtype=np.int64)
    h, w = per_pos.shape[-2:]
    # how many output positions see input (y, x): rows y-1..y+1 ∩ [0, H), same for columns
    rows = np.minimum(np.arange(h) + 1, h - 1) - np.maximum(np.arange(h) - 1, 0) + 1
    cols = np.minimum(np.arange(w) + 1, w - 1) - np.maximum(np.arange(w) - 1, 0) + 1
    return int((per_pos * (rows[:, None] * cols[None, :])).sum())


def _tokens(x):
    """``[..., C, h, w]`` → ``[..., N, C]`` (token ``n = y·w + x``)."""
    c = x.shape[-3]
    return np.moveaxis(x.reshape(x.shape[:-2] + (-1,)), -2, -1).reshape(
        x.shape[:-3] + (-1, c))


def _maps(tok, hw):
    """``[..., N, C]`` → ``[..., C, h, w]``."""
    return np.moveaxis(tok, -1, -2).reshape(tok.shape[:-2] + (tok.shape[-1],) + tuple(hw))


def _check_images(model, images):
    images = np.asarray(images)
    cfg = model.config
    want = (cfg["in_channels"], *cfg["img_size"])
    if images.ndim != 4 or images.shape[1:] != tuple(want):
        raise UserError(f"images must be uint8 [B, {want[0]}, {want[1]}, {want[2]}] for this "
                        f"model, not {images.dtype} {list(images.shape)}")
    if images.dtype != np.uint8:
        raise UserError(f"images must be uint8 pixels, not {images.dtype}")
    return images


def run(model, images, spikes=False, trace=None):
    """Run the integer model on a batch of uint8 images.

    Parameters
    ----------
    model : IntegerModel
        A validated integer model (e.g. from :func:`sdtforge.quantize.ir.load`).
    images : numpy.ndarray
        ``uint8 [B, C, H, W]`` raw pixels.
    spikes : bool
        Also return every spike tensor (memory grows with ``T·B``).
    trace : callable, optional
        ``trace(layer, key, values)`` is called with every integer a layer computes that has a
        declared width: ``"acc"`` (accumulators), ``"shifted"``, ``"stream"`` (after the
        add) and ``"x"`` (the input current of a LIF reading the stream, the head or SDSA). The
        overflow tests check them against ``layer.widths``.

    Returns
    -------
    GoldenResult
    """
    images = _check_images(model, images)
    cfg = model.config
    t_steps = int(cfg["T"])
    batch = images.shape[0]
    token_hw = ir.expected_geometry(cfg)["token_hw"]
    n_tok = token_hw[0] * token_hw[1]
    tensors = {}
    recorded = {}
    counts = {}
    stream = None  # [T, B, N, D] int64

    def tr(layer, key, values):
        if trace is not None:
            trace(layer, key, values)
        return values

    def record(name, value, as_maps=False):
        tensors[name] = value
        if spikes:
            recorded[name] = _maps(value, token_hw) if as_maps else value

    for layer in model.layers:
        c = dict.fromkeys(COUNT_KEYS, 0)
        if isinstance(layer, ir.PixelConv3x3):
            acc = tr(layer, "acc", ops.conv3x3(images, layer.weight, layer.bias,
                                               layer.zero_point))
            s = _lif(np.broadcast_to(acc, (t_steps,) + acc.shape), layer.theta[:, None, None])
            c["macs"] = batch * layer.out_channels * layer.in_channels * 9 * acc.shape[-1] * \
                acc.shape[-2]
            c["mem_reads"] = c["macs"] + batch * images[0].size
        elif isinstance(layer, ir.SpikeConv3x3):
            src = tensors[layer.input]
            acc = tr(layer, "acc", ops.conv3x3(src, layer.weight, layer.bias))
            s = _lif(acc, layer.theta[:, None, None])
            c["acs"] = layer.out_channels * _box_count(src)
        elif isinstance(layer, ir.StreamConv3x3):
            src = tensors[layer.input]
            if src.ndim == 4:  # token spikes [T, B, N, C] (the rpe reads sps.lif3)
                src = _maps(src, token_hw)
            acc = tr(layer, "acc", ops.conv3x3(src, layer.weight, layer.bias))
            c["acs"] = layer.out_channels * _box_count(src)
            if layer.pool:
                acc = ops.int_maxpool(acc)
            acc = _tokens(acc)
            tr(layer, "shifted", acc << layer.shift.astype(np.int64))
            if layer.mode == "set":
                stream = acc << layer.shift.astype(np.int64)
                c["mem_writes"] = stream.size
            else:
                stream = ops.align_add(stream, acc, layer.shift)
                c["residual_adds"] = stream.size
                c["mem_reads"] = stream.size
                c["mem_writes"] = stream.size
            tr(layer, "stream", stream)
        elif isinstance(layer, ir.StreamLIF):
            s = _lif(tr(layer, "x", stream), layer.theta)
            c["mem_reads"] = stream.size
            record(layer.output, s, as_maps=True)
        elif isinstance(layer, ir.Conv1x1):
            src = tensors[layer.input]
            acc = tr(layer, "acc", ops.conv1x1(src, layer.weight, layer.bias))
            s = _lif(acc, layer.theta)
            c["acs"] = layer.out_channels * int(src.sum(dtype=np.int64))
            record(layer.output, s, as_maps=True)
        elif isinstance(layer, ir.SDSA):
            q, k, v = tensors[layer.input], tensors[layer.k], tensors[layer.v]
            out = np.empty_like(q)
            masks = np.empty((t_steps, batch, layer.channels), np.uint8)
            vm = np.zeros((batch, layer.channels), np.int64)
            for t in range(t_steps):
                out[t], masks[t], vm = ops.sdsa_step(q[t], k[t], v[t], vm, layer.theta,
                                                     layer.shift)
            c["acs"] = int((k & v).sum(dtype=np.int64))
            tr(layer, "x", (k & v).sum(axis=-2, dtype=np.int64) << layer.shift)
            c["mask_ops"] = 2 * t_steps * batch * n_tok * layer.channels
            c["neuron_updates"] = t_steps * batch * layer.channels
            c["spikes"] = int(out.sum(dtype=np.int64))
            c["mem_reads"] = 3 * t_steps * batch * n_tok * layer.channels + c["neuron_updates"]
            c["mem_writes"] = t_steps * batch * n_tok * layer.channels + c["neuron_updates"]
            record(layer.mask_output, masks)
            record(layer.output, out, as_maps=True)
            counts[layer.name] = c
            continue
        elif isinstance(layer, ir.StreamConv1x1):
            src = tensors[layer.input]
            acc = tr(layer, "acc", ops.conv1x1(src, layer.weight, layer.bias))
            tr(layer, "shifted", acc << layer.shift.astype(np.int64))
            stream = tr(layer, "stream", ops.align_add(stream, acc, layer.shift))
            c["acs"] = layer.out_channels * int(src.sum(dtype=np.int64))
            c["residual_adds"] = stream.size
            c["mem_reads"] = stream.size
            c["mem_writes"] = stream.size
        elif isinstance(layer, ir.Head):
            x_head = tr(layer, "x", stream.sum(axis=-2))  # Σ over tokens: [T, B, D]
            s = _lif(x_head, layer.theta)
            acc = tr(layer, "acc", ops.accumulate_events(s, layer.weight.T, layer.bias))
            logits = tr(layer, "logits", acc.sum(axis=0))
            c["acs"] = layer.num_classes * int(s.sum(dtype=np.int64))
            c["residual_adds"] = stream.size
            c["mem_reads"] = stream.size
            record(layer.output, s)
        else:  # pragma: no cover - load() admits only the kinds above
            raise TypeError(f"unknown layer {layer!r}")
        if not isinstance(layer, (ir.StreamConv3x3, ir.StreamConv1x1)):
            c["spikes"] = int(s.sum(dtype=np.int64))
            c["neuron_updates"] = s.size
            c["mem_reads"] += c["acs"] + s.size  # weight words + membrane reads
            c["mem_writes"] += 2 * s.size  # membrane + spike bit per neuron update
            if isinstance(layer, (ir.PixelConv3x3, ir.SpikeConv3x3)):
                record(layer.output, s)
                # the recording is before the pool; the next layer reads the pooled map
                tensors[layer.output] = ops.spike_maxpool(s) if layer.pool else s
            else:
                tensors[layer.output] = s
        else:
            c["mem_reads"] += c["acs"]
        counts[layer.name] = c
    classes = np.argmax(logits, axis=1).astype(np.int64)  # first maximum on ties
    return GoldenResult(logits=logits.astype(np.int64), classes=classes, spikes=recorded,
                        counts=counts, batch=batch)
