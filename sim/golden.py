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
from sdtforge.registry import Registry

from . import ops

__all__ = ["GoldenResult", "run", "COUNT_KEYS", "MEMORY_KEYS", "GOLDEN_OPS"]

#: Memory accesses by the memory they touch (element counts; ``sim/energy.py`` gives each its
#: bit width and memory size): weights, membrane state, spike maps, the residual stream, input
#: pixels. ``mem_reads`` / ``mem_writes`` are their sums.
MEMORY_KEYS = ("weight_reads", "state_reads", "state_writes", "spike_reads", "spike_writes",
               "stream_reads", "stream_writes", "input_reads")

#: Keys of every layer's entry in :attr:`GoldenResult.counts`.
COUNT_KEYS = ("spikes", "acs", "macs", "mask_ops", "neuron_updates", "residual_adds",
              *MEMORY_KEYS, "mem_reads", "mem_writes")


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
        (``[T, B, C, H, W]`` for maps and tokens, ``[T, B, D]`` for masks and ``head.lif``);
        an event model's also its input frames, ``"pixels"`` (``uint8 [T, B, C, H, W]``
        counts, not spikes: the cycle model reads their largest count; a view of the input
        array, not a copy).
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


def _check_inputs(model, images):
    """``images`` as a uint8 array of ``[B, *model.input_shape]``, or a one-line
    :class:`UserError` (pixels ``[B, C, H, W]``, or event frames ``[B, T, C, H, W]``)."""
    images = np.asarray(images)
    want = model.input_shape
    events = model.encoding == "events"
    what = "event frames" if events else "images"
    if images.ndim != len(want) + 1 or images.shape[1:] != tuple(want):
        raise UserError(f"{what} must be uint8 [B, {', '.join(map(str, want))}] for this "
                        f"model, not {images.dtype} {list(images.shape)}")
    if images.dtype != np.uint8:
        raise UserError(f"{what} must be uint8 {'counts' if events else 'pixels'}, not "
                        f"{images.dtype} (sdtforge.model.integer_inputs converts them)")
    return images


class _Run:
    """The state of one :func:`run` that the per-kind golden ops read and write."""

    def __init__(self, model, images, spikes, trace):
        self.model = model
        self.images = images
        self.steps = int(model.config["T"])
        self.batch = images.shape[0]
        self.token_hw = ir.expected_geometry(model.config)["token_hw"]
        self.tokens = self.token_hw[0] * self.token_hw[1]
        self.tensors = {}       # name -> what the next layers read
        self.recorded = {}      # name -> recording (``spikes=True``)
        self.stream = None      # [T, B, N, D] int64
        self.logits = None
        self._spikes = spikes
        self._trace = trace

    def tr(self, layer, key, values):
        """Report ``values`` to the trace callback under ``key``; returns them."""
        if self._trace is not None:
            self._trace(layer, key, values)
        return values

    def record(self, name, value, as_maps=False):
        """Keep ``value`` as tensor ``name`` and, with ``spikes=True``, its recording."""
        self.tensors[name] = value
        if self._spikes:
            self.recorded[name] = _maps(value, self.token_hw) if as_maps else value

    def fired(self, layer, s, c, as_maps=False):
        """Count the spikes ``s`` of a spiking layer into ``c`` and keep them as its output."""
        c["spikes"] = int(s.sum(dtype=np.int64))
        c["neuron_updates"] = s.size
        c["weight_reads"] += c["acs"]  # one weight per synaptic accumulate
        c["state_reads"] += s.size  # membrane read and written per neuron update
        c["state_writes"] += s.size
        c["spike_writes"] += s.size  # one spike bit per neuron update
        self.record(layer.output, s, as_maps=as_maps)


#: The golden-model pass: one op per layer kind, ``op(layer, run)`` → the layer's counts
#: (:data:`COUNT_KEYS`); it reads its input from ``run.tensors`` / ``run.stream`` and writes
#: its output there (``docs/extending.md``).
GOLDEN_OPS = Registry("golden model")


def _counts():
    return dict.fromkeys(COUNT_KEYS, 0)


def _with_totals(c):
    c["mem_reads"] = sum(c[k] for k in MEMORY_KEYS if k.endswith("_reads"))
    c["mem_writes"] = sum(c[k] for k in MEMORY_KEYS if k.endswith("_writes"))
    return c


def _spiking_conv3x3(layer, r, acc, c):
    s = _lif(acc, layer.theta[:, None, None])
    r.fired(layer, s, c)
    if layer.pool:  # the recording is before the pool; the next layer reads the pooled map
        r.tensors[layer.output] = ops.spike_maxpool(s)
    return c


@GOLDEN_OPS.register("conv3x3_pixel")
def _pixel_conv(layer, r):
    c = _counts()
    acc = r.tr(layer, "acc", ops.conv3x3(r.images, layer.weight, layer.bias, layer.zero_point))
    c["macs"] = r.batch * layer.out_channels * layer.in_channels * 9 * acc.shape[-1] * \
        acc.shape[-2]
    c["weight_reads"] = c["macs"]
    c["input_reads"] = r.batch * r.images[0].size
    return _spiking_conv3x3(layer, r, np.broadcast_to(acc, (r.steps,) + acc.shape), c)


@GOLDEN_OPS.register("conv3x3_events")
def _event_conv(layer, r):
    c = _counts()
    frames = np.moveaxis(r.images, 1, 0)  # [T, B, C, H, W]
    r.record(layer.input, frames)  # the cycle model's gathers depend on its largest count
    acc = r.tr(layer, "acc", ops.conv3x3(frames, layer.weight, layer.bias))
    # Event-driven, as a spike layer: a count of k is k events, each an accumulate per tap in
    # range and output channel (the paper counts event input as synaptic operations).
    c["acs"] = layer.out_channels * _box_count(frames)
    c["input_reads"] = r.images.size
    return _spiking_conv3x3(layer, r, acc, c)


@GOLDEN_OPS.register("conv3x3_spike")
def _spike_conv(layer, r):
    c = _counts()
    src = r.tensors[layer.input]
    acc = r.tr(layer, "acc", ops.conv3x3(src, layer.weight, layer.bias))
    c["acs"] = layer.out_channels * _box_count(src)
    c["spike_reads"] = src.size
    return _spiking_conv3x3(layer, r, acc, c)


def _stream_write(layer, r, acc, c, mode):
    """``stream = acc << shift`` (``mode="set"``) or ``stream += acc << shift``."""
    r.tr(layer, "shifted", acc << layer.shift.astype(np.int64))
    if mode == "set":
        r.stream = acc << layer.shift.astype(np.int64)
        c["stream_writes"] = r.stream.size
    else:
        r.stream = ops.align_add(r.stream, acc, layer.shift)
        c["residual_adds"] = c["stream_reads"] = c["stream_writes"] = r.stream.size
    r.tr(layer, "stream", r.stream)
    c["weight_reads"] += c["acs"]
    return c


@GOLDEN_OPS.register("stream_conv3x3")
def _stream_conv3x3(layer, r):
    c = _counts()
    src = r.tensors[layer.input]
    if src.ndim == 4:  # token spikes [T, B, N, C] (the rpe reads sps.lif3)
        src = _maps(src, r.token_hw)
    acc = r.tr(layer, "acc", ops.conv3x3(src, layer.weight, layer.bias))
    c["acs"] = layer.out_channels * _box_count(src)
    c["spike_reads"] = src.size
    if layer.pool:
        acc = ops.int_maxpool(acc)
    return _stream_write(layer, r, _tokens(acc), c, layer.mode)


@GOLDEN_OPS.register("stream_lif")
def _stream_lif(layer, r):
    c = _counts()
    s = _lif(r.tr(layer, "x", r.stream), layer.theta)
    c["stream_reads"] = r.stream.size
    r.fired(layer, s, c, as_maps=True)
    return c


def _tokens_product(layer, r):
    """``(acc, counts)`` of a 1×1 conv over token spikes."""
    c = _counts()
    src = r.tensors[layer.input]
    acc = r.tr(layer, "acc", ops.conv1x1(src, layer.weight, layer.bias))
    c["acs"] = layer.out_channels * int(src.sum(dtype=np.int64))
    c["spike_reads"] = src.size
    return acc, c


@GOLDEN_OPS.register("conv1x1")
def _conv1x1(layer, r):
    acc, c = _tokens_product(layer, r)
    r.fired(layer, _lif(acc, layer.theta), c, as_maps=True)
    return c


@GOLDEN_OPS.register("stream_conv1x1")
def _stream_conv1x1(layer, r):
    acc, c = _tokens_product(layer, r)
    return _stream_write(layer, r, acc, c, "add")


@GOLDEN_OPS.register("sdsa", "sdsa_dvs")
def _sdsa(layer, r):
    c = _counts()
    q, k, v = r.tensors[layer.input], r.tensors[layer.k], r.tensors[layer.v]
    cells = r.steps * r.batch * r.tokens * layer.channels
    heads = None
    if layer.KIND == "sdsa_dvs":
        # DVS mode: K and V eroded over space; K∧V and Q∧mask over (token, head channel).
        k, v = (ops.erode_map(x, *r.token_hw) for x in (k, v))
        heads = layer.heads
    out, masks = ops.sdsa_run(q, k, v, layer.theta, layer.shift, heads)
    kv = k & v
    if heads is not None:
        kv = ops.erode_heads(kv, heads)
    c["acs"] = int(kv.sum(dtype=np.int64))
    r.tr(layer, "x", kv.sum(axis=-2, dtype=np.int64) << layer.shift)
    c["mask_ops"] = 2 * cells
    c["neuron_updates"] = r.steps * r.batch * layer.channels
    c["spikes"] = int(out.sum(dtype=np.int64))
    c["spike_reads"] = 3 * cells  # Q, K and V
    c["spike_writes"] = cells + c["neuron_updates"]  # the output and the mask
    if heads is not None:
        # The hardware's reads at most (a window's in-bounds positions, 9 inside the map): the
        # spatial erosions read a window of K and one of V (they replace the SDSA's K and V
        # reads) and write the eroded maps; K'∧V' is eroded from a window of both, Q∧mask
        # from a window of Q (replacing the Q read). An OR per read.
        c["spike_reads"] = (9 + 9 + 2 * 9 + 9) * cells
        c["spike_writes"] += 2 * cells
        c["mask_ops"] += (9 + 9 + 9 + 9) * cells
    if not layer.stateless_or:  # an OR mask keeps no membrane (the hardware's "or" mode)
        c["state_reads"] = c["state_writes"] = c["neuron_updates"]
    r.record(layer.mask_output, masks)
    r.record(layer.output, out, as_maps=True)
    return c


@GOLDEN_OPS.register("head")
def _head(layer, r):
    c = _counts()
    x_head = r.tr(layer, "x", r.stream.sum(axis=-2))  # Σ over tokens: [T, B, D]
    s = _lif(x_head, layer.theta)
    acc = r.tr(layer, "acc", ops.accumulate_events(s, layer.weight.T, layer.bias))
    r.logits = r.tr(layer, "logits", acc.sum(axis=0))
    c["acs"] = layer.num_classes * int(s.sum(dtype=np.int64))
    c["residual_adds"] = c["stream_reads"] = r.stream.size
    r.fired(layer, s, c)
    return c


def run(model, images, spikes=False, trace=None):
    """Run the integer model on a batch of uint8 images.

    Parameters
    ----------
    model : IntegerModel
        A validated integer model (e.g. from :func:`sdtforge.quantize.ir.load`).
    images : numpy.ndarray
        ``uint8 [B, C, H, W]`` raw pixels, or for an event model ``uint8 [B, T, C, H, W]``
        event counts per step (:func:`sdtforge.model.integer_inputs` saturates them).
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
    r = _Run(model, _check_inputs(model, images), spikes, trace)
    counts = {layer.name: _with_totals(GOLDEN_OPS[layer.KIND](layer, r))
              for layer in model.layers}
    logits = r.logits
    classes = np.argmax(logits, axis=1).astype(np.int64)  # first maximum on ties
    return GoldenResult(logits=logits.astype(np.int64), classes=classes, spikes=r.recorded,
                        counts=counts, batch=r.batch)
