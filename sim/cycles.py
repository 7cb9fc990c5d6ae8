"""Cycle model of the accelerator (``hdl/accelerator.py``) and work / dense bounds.

:func:`predict` counts the controller's cycles per image from the integer model and the spike
maps the golden model records (``golden.run(..., spikes=True)``); it follows the controller's
states one by one (``docs/accelerator.md`` §6), so it does not import ``hdl/``. The data-
dependent part is the event gather: a spike word costs ``max(popcount, 1)`` cycles in the event
encoder. :func:`work_bound` and :func:`dense_bound` are the reference points for benchmarks.
"""

import numpy as np

from . import ops

__all__ = ["predict", "work_bound", "dense_bound", "DECODE_CYCLES"]

#: FETCH (16 program words, one cycle each, plus the read latency), DECODE and 9 TAPS cycles
#: per descriptor.
DECODE_CYCLES = 17 + 1 + 9
_GROUP = 2          # GROUP, GROUP_SHIFT
_LOOP = 3           # POS, OUT, NEXT per (group, position, step)
_GATHER = 5         # GATHER_CMD, 2 fetch/encoder latency, GATHER_DRAIN, GATHER_WAIT
_OUT = {"spike": 2, "stream": 2, "logit": 1}
_CONV_START = 3     # CONV_START and the first row's two fetch/encoder cycles
_ROW = 2            # CONV_DRAIN (or the empty last word's marker), CONV_WAIT


def _ceil(a, b):
    return -(-int(a) // int(b))


def _word_cost(s, width):
    """``[T, H, W]`` cycles the encoder spends on one position's words: Σ max(popcount, 1).

    ``s``: ``[T, C, H, W]`` spikes of one image.
    """
    t, c, h, w = s.shape
    words = _ceil(c, width)
    pad = np.zeros((t, words * width, h, w), np.int64)
    pad[:, :c] = s
    pop = pad.reshape(t, words, width, h, w).sum(axis=2)
    return np.maximum(pop, 1).sum(axis=1)


def _box(cost, k3):
    """Σ of ``cost [T, H, W]`` over each position's in-bounds 3×3 (or 1×1) neighbourhood."""
    if not k3:
        return cost
    t, h, w = cost.shape
    p = np.zeros((t, h + 2, w + 2), np.int64)
    p[:, 1:-1, 1:-1] = cost
    return sum(p[:, dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3))


def _window_ranges(n):
    """In-bounds rows of each pooled output's 3×3/s2/p1 window over ``n`` rows."""
    return [[2 * o + d - 1 for d in range(3) if 0 <= 2 * o + d - 1 < n]
            for o in range((n - 1) // 2 + 1)]


def _conv_cycles(s, groups, k3, width):
    """Cycles of a spike-input CONV over map ``s`` ``[T, C, H, W]`` (one image).

    The row pipeline (``docs/accelerator.md`` §9): ``CONV_START`` and two fetch cycles, then per
    row (group, position, step) its encoder items plus ``_ROW`` (drain, take + next bias). A
    pooled conv iterates the input positions too (its window merges overlap the next gather).
    Only the layer's very last row differs: with an empty last word the marker cycle is the
    drain and no next fetch follows, so it is one cycle shorter.
    """
    t_steps, c, h, w = s.shape
    per_group = int((_box(_word_cost(s, width), k3) + _ROW).sum())
    words = _ceil(c, width)
    last_word = s[t_steps - 1, (words - 1) * width:, h - 1, w - 1]
    return _CONV_START + groups * per_group - int(not last_word.any())


def predict(model, spikes, lanes, width, image=0):
    """Predicted controller cycles for one image (what the result stream reports).

    Parameters
    ----------
    model : IntegerModel
        The integer model.
    spikes : dict
        ``GoldenResult.spikes`` (recording names → ``[T, B, …]`` 0/1 arrays).
    lanes, width : int
        The accelerator's ``P`` and ``W``.
    image : int
        Batch index of the image.

    Returns
    -------
    dict
        ``total`` and per-layer cycles.
    """
    p = lanes
    t_steps = int(model.config["T"])
    n = model.tokens

    # Recordings are taken at the LIF, before a stage's OR pool; the next layer reads the pool.
    pooled = {lay.output for lay in model.layers
              if lay.KIND in ("conv3x3_pixel", "conv3x3_spike") and lay.pool}

    def smap(name):
        a = np.asarray(spikes[name])[:, image]
        a = a if a.ndim == 4 else a.reshape(t_steps, -1, 1, 1)
        return ops.spike_maxpool(a) if name in pooled else a

    out = {}
    for layer in model.layers:
        kind, cyc = layer.KIND, DECODE_CYCLES
        if kind == "conv3x3_pixel":
            g = _ceil(layer.out_channels, p)
            hw = layer.height * layer.width
            gather = 8 * (_GATHER + 9 * layer.in_channels)
            cyc += g * (_GROUP + hw * (gather + t_steps * (_LOOP + _OUT["spike"])))
        elif kind in ("conv3x3_spike", "conv1x1", "stream_conv3x3", "stream_conv1x1"):
            cyc += _conv_cycles(smap(layer.input), _ceil(layer.out_channels, p),
                                kind in ("conv3x3_spike", "stream_conv3x3"), width)
        elif kind == "stream_lif":
            cyc += _ceil(layer.channels, p) * (_GROUP + n * t_steps * (_LOOP + 2
                                                                       + _OUT["spike"]))
        elif kind == "sdsa":
            # Per step: 3 cycles per (token, word) for K∧V and for Q; the serial mask takes W
            # cycles per word, the last one overlapping the first Q read.
            words = _ceil(layer.channels, width)
            cyc += t_steps * (6 * n * words + words * width - 1)
        elif kind == "head":
            g = _ceil(layer.channels, p)
            cyc += g * (_GROUP + t_steps * (_LOOP + 2 * n + _OUT["spike"]))
            head = np.asarray(spikes[layer.output])[:, image]
            cyc += DECODE_CYCLES + _conv_cycles(head.reshape(t_steps, -1, 1, 1),
                                                _ceil(layer.num_classes, p), False, width)
            cyc += DECODE_CYCLES    # END
        if getattr(layer, "pool", False) and kind in ("conv3x3_pixel", "conv3x3_spike"):
            words = _ceil(layer.out_channels, width)
            wins = sum(len(ys) * len(xs) for ys in _window_ranges(layer.height)
                       for xs in _window_ranges(layer.width))
            pos = len(_window_ranges(layer.height)) * len(_window_ranges(layer.width))
            out[layer.name + ".pool"] = DECODE_CYCLES + words * t_steps * (2 * wins + 3 * pos)
        out[layer.name] = cyc
    return {"total": sum(out.values()), "layers": out}


def work_bound(counts, lanes):
    """``(synaptic accumulates + first-layer MACs + neuron updates) / P`` cycles per image.

    ``counts``: :meth:`GoldenResult.totals` (per-image sums).
    """
    return (counts["acs"] + counts["macs"] + counts["neuron_updates"]) / lanes


def dense_bound(model, lanes):
    """Cycles a dense engine with ``P`` MAC lanes needs per image (every synapse, every step)."""
    t_steps = int(model.config["T"])
    total = 0
    for layer in model.layers:
        if hasattr(layer, "weight"):
            w = np.asarray(layer.weight)
            fan = w.size
            if w.ndim == 4:
                fan *= layer.height * layer.width
                if getattr(layer, "pool", False) and layer.KIND == "stream_conv3x3":
                    pass
            else:
                fan *= getattr(layer, "tokens", 1) if layer.KIND != "head" else 1
            total += fan * (1 if layer.KIND == "conv3x3_pixel" else t_steps)
    return total / lanes
