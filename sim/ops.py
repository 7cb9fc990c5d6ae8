"""Per-operation integer functions of the integer semantics (``docs/integer-semantics.md``).

These are the spec, one NumPy function per operation, shared by the golden model
(:mod:`sdtforge.sim.golden`) and by the HDL unit tests as their reference. They are written
for clarity first; every function accepts extra leading (batch) axes.

Conventions: spikes are ``uint8`` arrays of 0/1; integers are ``int64``; feature maps are
``(..., C, H, W)``; token tensors are ``(..., N, C)``.
"""

import numpy as np

__all__ = [
    "lif_step", "lif_run", "sdsa_step", "sdsa_run", "erode_map", "erode_heads", "spike_maxpool",
    "int_maxpool", "align_add",
    "accumulate_events", "conv3x3", "conv1x1", "exact_matmul", "im2col3x3",
]

# Integers up to these magnitudes are exact in float32 / float64; an accumulation whose every
# partial sum stays below them gives the exact integer result whatever the BLAS summation order.
_F32_EXACT = 1 << 24
_F64_EXACT = 1 << 53


def exact_matmul(a, b):
    """Exact integer ``a @ b`` (``int64`` result), through BLAS where that is provably exact.

    Every partial sum of a row of ``a`` times a column of ``b`` is bounded by
    ``max|a| · max_col Σ|b|``; below 2^24 (float32) or 2^53 (float64) all of them are exact
    floating-point integers, so the fast product equals the integer one. Otherwise int64.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.size == 0 or b.size == 0:
        return np.asarray(a, np.int64) @ np.asarray(b, np.int64)
    amax = max(int(a.max()), -int(a.min()))  # no int64 copy of the (large) left operand
    bsum = int(np.abs(b.astype(np.int64)).sum(axis=0).max())
    bound = amax * bsum
    if bound < _F32_EXACT:
        out = a.astype(np.float32, copy=False) @ b.astype(np.float32, copy=False)
    elif bound < _F64_EXACT:
        out = a.astype(np.float64, copy=False) @ b.astype(np.float64, copy=False)
    else:
        return a.astype(np.int64) @ b.astype(np.int64)
    return out.astype(np.int64)


def im2col3x3(x, pad_value=0):
    """3×3/pad-1 patches of ``x`` ``(..., Ci, H, W)`` as ``(..., H, W, Ci·9)`` (weight order).

    The last axis is ordered ``(ci, dy, dx)`` like ``weight.reshape(Co, -1)``; borders hold
    ``pad_value`` (scalar or per input channel). Keeps the input dtype.
    """
    x = np.asarray(x)
    ci, h, w = x.shape[-3:]
    padv = np.broadcast_to(np.asarray(pad_value, x.dtype), (ci,))
    xp = np.empty(x.shape[:-2] + (h + 2, w + 2), x.dtype)
    xp[...] = padv[:, None, None]
    xp[..., 1:-1, 1:-1] = x
    cols = np.empty(x.shape[:-3] + (h, w, ci, 9), x.dtype)
    for dy in range(3):
        for dx in range(3):
            cols[..., dy * 3 + dx] = np.moveaxis(xp[..., dy:dy + h, dx:dx + w], -3, -1)
    return cols.reshape(x.shape[:-3] + (h, w, ci * 9))


def lif_step(v, x, theta):
    """One integer LIF step (τ = 2, hard reset): ``H = (V + X) >> 1``, ``S = H >= θ``.

    Returns ``(spikes, v_next)`` with ``v_next = 0`` where a spike fired, else ``H``.
    ``theta`` broadcasts against the last axes (per channel).
    """
    h = (np.asarray(v, np.int64) + np.asarray(x, np.int64)) >> 1
    s = h >= np.asarray(theta, np.int64)
    return s.astype(np.uint8), np.where(s, 0, h)


def lif_run(x_seq, theta, v0=0):
    """Run :func:`lif_step` over the leading time axis of ``x_seq``; state starts at ``v0``."""
    x_seq = np.asarray(x_seq, np.int64)
    v = np.broadcast_to(np.asarray(v0, np.int64), x_seq.shape[1:]).copy()
    out = np.empty(x_seq.shape, np.uint8)
    for t in range(x_seq.shape[0]):
        out[t], v = lif_step(v, x_seq[t], theta)
    return out


def sdsa_step(q, k, v, v_mask, theta=1, shift=1, heads=None):
    """One time step of spike-driven self-attention on ``(..., N, C)`` spike tensors.

    ``kv[c] = Σ_n K[n,c] ∧ V[n,c]``; the mask neuron is an integer LIF fed ``kv << shift``
    with threshold ``theta`` and state ``v_mask`` (``(..., C)``); output ``Q ∧ mask``.
    With ``heads`` (DVS mode, the reference's ``dvs_mode``), ``K ∧ V`` and ``Q ∧ mask`` are
    eroded over (token, channel within a head) first (:func:`erode_heads`); ``K`` and ``V``
    are then the spatially eroded maps (:func:`erode_map`).
    Returns ``(out, mask, v_mask_next)``.
    """
    kv = np.asarray(k, np.uint8) & np.asarray(v, np.uint8)
    if heads is not None:
        kv = erode_heads(kv, heads)
    mask, v_next = lif_step(v_mask, kv.sum(axis=-2, dtype=np.int64) << shift, theta)
    out = (np.asarray(q, np.uint8) & mask[..., None, :]).astype(np.uint8)
    if heads is not None:
        out = erode_heads(out, heads)
    return out, mask, v_next


def sdsa_run(q, k, v, theta=1, shift=1, heads=None):
    """:func:`sdsa_step` over the leading time axis of ``(T, ..., N, C)`` spike tensors, the
    mask state starting at 0. Returns ``(out, mask)``: ``uint8 (T, ..., N, C)`` and
    ``uint8 (T, ..., C)``."""
    out, masks = np.empty(np.shape(q), np.uint8), []
    vm = np.zeros(np.shape(q)[1:-2] + np.shape(q)[-1:], np.int64)
    for t in range(len(q)):
        out[t], mask, vm = sdsa_step(q[t], k[t], v[t], vm, theta, shift, heads)
        masks.append(mask)
    return out, np.stack(masks).astype(np.uint8)


def _or3(x, axis, groups=1):
    """OR of each element with its two neighbours along ``axis`` (none past either end, nor
    across the boundaries of ``groups`` equal groups of that axis)."""
    x = np.moveaxis(np.asarray(x, np.uint8), axis, -1)
    g = x.reshape(*x.shape[:-1], groups, x.shape[-1] // groups)
    out = g.copy()
    out[..., 1:] |= g[..., :-1]
    out[..., :-1] |= g[..., 1:]
    return np.moveaxis(out.reshape(x.shape), -1, axis)


def erode_map(s, height, width):
    """The reference's DVS ``Erode`` of a spike map: OR over each 3×3 window, stride 1, pad 1
    (max of spikes; padding never wins), on token tensors ``(..., N, C)`` of a
    ``height × width`` token grid (row-major)."""
    s = np.asarray(s, np.uint8)
    grid = s.reshape(*s.shape[:-2], height, width, s.shape[-1])
    return _or3(_or3(grid, -3), -2).reshape(s.shape)


def erode_heads(s, heads):
    """The reference's DVS ``Erode`` on its head-split tensor: on token tensors ``(..., N,
    C)``, OR over the three neighbouring tokens in row-major order (so across row ends; none
    before the first or after the last) and the three neighbouring channels *of one head*
    (``C / heads`` channels each; none across a head boundary)."""
    return _or3(_or3(s, -2), -1, groups=heads)


def _pool3x3s2(x, pad_value, reduce):
    """3×3 window, stride 2, padding 1 over the last two axes (PyTorch MaxPool2d geometry)."""
    h, w = x.shape[-2:]
    ho, wo = (h - 1) // 2 + 1, (w - 1) // 2 + 1
    pad = [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)]
    xp = np.pad(x, pad, constant_values=pad_value)
    out = None
    for dy in range(3):
        for dx in range(3):
            win = xp[..., dy:dy + 2 * ho:2, dx:dx + 2 * wo:2]
            out = win if out is None else reduce(out, win)
    return out


def spike_maxpool(s):
    """Max-pool of spikes, which is OR over each 3×3/stride-2/pad-1 window."""
    return _pool3x3s2(np.asarray(s, np.uint8), 0, np.bitwise_or)


def int_maxpool(x):
    """Integer max-pool (3×3, stride 2, pad 1); padding never wins."""
    x = np.asarray(x, np.int64)
    return _pool3x3s2(x, np.iinfo(np.int64).min, np.maximum)


def align_add(stream, acc, shift):
    """Residual add with exact alignment: ``stream + (acc << shift)``; shift per channel ok."""
    return np.asarray(stream, np.int64) + (np.asarray(acc, np.int64) << np.asarray(shift, np.int64))


def accumulate_events(spikes, weights, bias):
    """Event-driven accumulate: ``bias + Σ_{i : spikes[i]} weights[i]``.

    ``spikes``: ``(..., K)`` 0/1; ``weights``: ``(K, P)`` integer rows; ``bias``: ``(P,)``.
    Only additions: each active input adds one weight row.
    """
    s = np.asarray(spikes)
    flat = exact_matmul(s.reshape(-1, s.shape[-1]), weights)
    return np.asarray(bias, np.int64) + flat.reshape(s.shape[:-1] + flat.shape[-1:])


def conv3x3(x, weight, bias, pad_value=0):
    """3×3 convolution, stride 1, padding 1 with ``pad_value`` per input channel.

    ``x``: ``(..., Ci, H, W)`` integers (spikes or uint8 pixels); ``weight``: ``(Co, Ci, 3, 3)``;
    ``bias``: ``(Co,)``; ``pad_value``: scalar or ``(Ci,)`` (the zero point of pixel inputs).
    Returns ``int64`` ``(..., Co, H, W)``: ``bias[co] + Σ_{ci,dy,dx} w·x_pad[ci, y+dy-1, x+dx-1]``.
    """
    x = np.asarray(x)
    if x.dtype.kind not in "iub":
        x = x.astype(np.int64)
    weight = np.asarray(weight, np.int64)
    co = weight.shape[0]
    h, w = x.shape[-2:]
    cols = im2col3x3(x, pad_value)
    flat = exact_matmul(cols.reshape(-1, cols.shape[-1]), weight.reshape(co, -1).T)
    out = flat.reshape(x.shape[:-3] + (h, w, co)) + np.asarray(bias, np.int64)
    return np.moveaxis(out, -1, -3)


def conv1x1(s, weight, bias):
    """1×1 convolution on token tensors: ``s`` ``(..., N, Ci)``, ``weight`` ``(Co, Ci)``."""
    return accumulate_events(s, np.asarray(weight, np.int64).T, bias)
