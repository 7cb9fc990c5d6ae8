"""The whole integer network, written a second time from ``docs/integer-semantics.md`` alone:
plain Python ints, per-element loops, no NumPy arithmetic, nothing from ``sim/``. The golden
model must agree with it bit for bit (logits and every recorded spike)."""

import numpy as np
import pytest

from sdtforge.quantize import synthetic
from sdtforge.sim import golden


def _lif(v, x, theta):
    """One step of the doc's §2 neuron on Python ints: ``(spike, next state)``."""
    h = (v + x) >> 1  # Python's >> floors for negative values too
    return (1, 0) if h >= theta else (0, h)


def _pool_geometry(n):
    return (n - 1) // 2 + 1


def _window(y, n):
    """Input rows ``2y−1 … 2y+1`` clipped to ``[0, n)`` (doc §4.3)."""
    return [r for r in (2 * y - 1, 2 * y, 2 * y + 1) if 0 <= r < n]


def _conv3x3(inp, weight, bias, pad):
    """``inp[ci][y][x]`` ints; ``pad[ci]`` the border value; returns ``acc[co][y][x]``."""
    ci_n, h, w = len(inp), len(inp[0]), len(inp[0][0])
    out = []
    for co in range(len(weight)):
        plane = []
        for y in range(h):
            row = []
            for x in range(w):
                acc = bias[co]
                for ci in range(ci_n):
                    for dy in range(3):
                        for dx in range(3):
                            yy, xx = y + dy - 1, x + dx - 1
                            u = inp[ci][yy][xx] if 0 <= yy < h and 0 <= xx < w else pad[ci]
                            wv = weight[co][ci][dy][dx]
                            if wv and u:
                                acc += wv * u
                row.append(acc)
            plane.append(row)
        out.append(plane)
    return out


def _or_pool(maps):
    h, w = len(maps[0]), len(maps[0][0])
    return [[[max(m[r][c] for r in _window(y, h) for c in _window(x, w))
              for x in range(_pool_geometry(w))] for y in range(_pool_geometry(h))]
            for m in maps]


def _max_pool(maps):
    return _or_pool(maps)  # same window; max of ints


def _lif_maps(acc_per_step, theta):
    """LIF over ``T`` steps of ``[C][H][W]`` currents; returns spikes ``[T][C][H][W]``."""
    c_n, h, w = len(acc_per_step[0]), len(acc_per_step[0][0]), len(acc_per_step[0][0][0])
    v = [[[0] * w for _ in range(h)] for _ in range(c_n)]
    out = []
    for acc in acc_per_step:
        s = [[[0] * w for _ in range(h)] for _ in range(c_n)]
        for c in range(c_n):
            for y in range(h):
                for x in range(w):
                    s[c][y][x], v[c][y][x] = _lif(v[c][y][x], acc[c][y][x], theta[c])
        out.append(s)
    return out


def _lif_tokens(x_per_step, theta):
    """LIF over ``T`` steps of token currents ``[N][C]``."""
    n, c_n = len(x_per_step[0]), len(x_per_step[0][0])
    v = [[0] * c_n for _ in range(n)]
    out = []
    for x in x_per_step:
        s = [[0] * c_n for _ in range(n)]
        for i in range(n):
            for c in range(c_n):
                s[i][c], v[i][c] = _lif(v[i][c], x[i][c], theta[c])
        out.append(s)
    return out


def _fc(tokens, weight, bias):
    """Event-driven 1×1: every active input channel adds one weight column."""
    out = []
    for tok in tokens:
        acc = list(bias)
        for ci, spike in enumerate(tok):
            if spike:
                for co in range(len(weight)):
                    acc[co] += weight[co][ci]
        out.append(acc)
    return out


def _to_tokens(maps):
    c_n, h, w = len(maps), len(maps[0]), len(maps[0][0])
    return [[maps[c][y][x] for c in range(c_n)] for y in range(h) for x in range(w)]


def _to_maps(tokens, h, w):
    return [[[tokens[y * w + x][c] for x in range(w)] for y in range(h)]
            for c in range(len(tokens[0]))]


def naive_run(model, image):
    """Logits (list of ints) and spikes (name → nested lists per step) of one image."""
    cfg = model.config
    t_steps = int(cfg["T"])
    lay = {la.name: la for la in model.layers}
    L = lambda a: np.asarray(a).tolist()  # noqa: E731 - values only, as Python ints
    rec = {}
    # §4.1 pixel conv, once per image; same current at every step
    c0 = lay["sps.conv0"]
    acc0 = _conv3x3(L(image), L(c0.weight), L(c0.bias), L(c0.zero_point))
    s = _lif_maps([acc0] * t_steps, L(c0.theta))
    rec["sps.lif0"] = s
    pooled = c0.pool
    for name in ("sps.conv1", "sps.conv2"):
        la = lay[name]
        inp = [_or_pool(st) if pooled else st for st in s]
        acc = [_conv3x3(x, L(la.weight), L(la.bias), [0] * la.in_channels) for x in inp]
        s = _lif_maps(acc, L(la.theta))
        rec[la.output] = s
        pooled = la.pool
    # §4.4 stage 3: pool the accumulator, then shift; the stream is born
    c3 = lay["sps.conv3"]
    inp = [_or_pool(st) if pooled else st for st in s]
    stream = []
    for x in inp:
        acc = _conv3x3(x, L(c3.weight), L(c3.bias), [0] * c3.in_channels)
        if c3.pool:
            acc = _max_pool(acc)
        h, w = len(acc[0]), len(acc[0][0])
        stream.append([[a << int(c3.shift[c]) for c, a in enumerate(tok)]
                       for tok in _to_tokens(acc)])
    st = _lif_tokens(stream, L(lay["sps.lif3"].theta))
    rec["sps.lif3"] = [_to_maps(x, h, w) for x in st]
    rpe = lay["sps.rpe"]
    for t in range(t_steps):
        acc = _to_tokens(_conv3x3(_to_maps(st[t], h, w), L(rpe.weight), L(rpe.bias),
                                  [0] * rpe.in_channels))
        stream[t] = [[stream[t][i][c] + (acc[i][c] << int(rpe.shift[c]))
                      for c in range(len(acc[0]))] for i in range(len(acc))]
    for b in range(int(cfg["depths"])):
        a, m = f"block{b}.attn", f"block{b}.mlp"
        s_in = _lif_tokens(stream, L(lay[f"{a}.lif_in"].theta))
        rec[f"{a}.lif_in"] = [_to_maps(x, h, w) for x in s_in]
        qkv = {}
        for x in "qkv":
            la = lay[f"{a}.{x}"]
            qkv[x] = _lif_tokens([_fc(s_t, L(la.weight), L(la.bias)) for s_t in s_in],
                                 L(la.theta))
            rec[f"{a}.{x}"] = [_to_maps(y, h, w) for y in qkv[x]]
        sd = lay[f"{a}.sdsa"]
        vm = [0] * sd.channels
        masks, outs = [], []
        for t in range(t_steps):
            mask = []
            for c in range(sd.channels):
                kv = sum(qkv["k"][t][i][c] & qkv["v"][t][i][c] for i in range(len(stream[t])))
                spike, vm[c] = _lif(vm[c], kv << sd.shift, sd.theta)
                mask.append(spike)
            masks.append(mask)
            outs.append([[q & mask[c] for c, q in enumerate(tok)] for tok in qkv["q"][t]])
        rec[f"{a}.mask"] = masks
        rec[f"{a}.out"] = [_to_maps(o, h, w) for o in outs]
        for wname, src in ((f"{a}.proj", outs), (f"{m}.fc2", None)):
            if src is None:
                s_in = _lif_tokens(stream, L(lay[f"{m}.lif_in"].theta))
                rec[f"{m}.lif_in"] = [_to_maps(x, h, w) for x in s_in]
                la = lay[f"{m}.fc1"]
                src = _lif_tokens([_fc(s_t, L(la.weight), L(la.bias)) for s_t in s_in],
                                  L(la.theta))
                rec[f"{m}.hidden"] = [_to_maps(x, h, w) for x in src]
            la = lay[wname]
            for t in range(t_steps):
                acc = _fc(src[t], L(la.weight), L(la.bias))
                stream[t] = [[stream[t][i][c] + (acc[i][c] << int(la.shift[c]))
                              for c in range(len(acc[0]))] for i in range(len(acc))]
    # §7 head: token sum, LIF, per-tensor linear, logits summed over T
    hd = lay["head"]
    x_head = [[sum(tok[c] for tok in stream[t]) for c in range(hd.channels)]
              for t in range(t_steps)]
    v = [0] * hd.channels
    logits = [0] * hd.num_classes
    rec["head.lif"] = []
    wt, bias = L(hd.weight), L(hd.bias)
    for t in range(t_steps):
        spikes = []
        for c in range(hd.channels):
            sp, v[c] = _lif(v[c], x_head[t][c], int(hd.theta[c]))
            spikes.append(sp)
        rec["head.lif"].append(spikes)
        for k in range(hd.num_classes):
            logits[k] += bias[k] + sum(wt[k][c] for c in range(hd.channels) if spikes[c])
    return logits, rec


def _check(model, images):
    res = golden.run(model, images, spikes=True)
    for i in range(len(images)):
        logits, rec = naive_run(model, images[i])
        assert res.logits[i].tolist() == logits
        assert int(res.classes[i]) == logits.index(max(logits))  # lowest index on ties
        assert set(rec) == set(res.spikes)
        for name, seq in rec.items():
            assert res.spikes[name][:, i].tolist() == seq, name


@pytest.mark.parametrize(("seed", "pooling"), [(0, "0001"), (3, "1001"), (5, "0100")])
def test_golden_equals_naive_on_random_models(seed, pooling):
    model = synthetic.random_model(synthetic.tiny_config(pooling_stat=pooling), seed=seed,
                                   theta_max=6)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (2, 1, 8, 8)).astype(np.uint8)
    images[1, 0, :2] = 255  # extremes next to the border
    images[1, 0, -2:] = 0
    _check(model, images)


def test_golden_equals_naive_on_the_shipped_model():
    from sdtforge.model import SHIPPED_CHECKPOINTS, load_dataset
    pytest.importorskip("torch")
    from sdtforge.quantize.quantizer import quantize_checkpoint
    model = quantize_checkpoint(SHIPPED_CHECKPOINTS["digits-tiny"])
    images, _ = load_dataset("digits", "test")
    _check(model, images[:3])
