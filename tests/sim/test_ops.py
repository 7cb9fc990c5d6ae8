"""sim.ops against a deliberately naive pure-Python-integer reference, extremes included."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sdtforge.sim import ops

BIG = 1 << 40  # beyond float32 and int32: the exact paths must still be exact


def naive_lif(v, x, theta):
    h = (v + x) // 2  # Python floor division = arithmetic shift
    s = 1 if h >= theta else 0
    return s, (0 if s else h)


def naive_conv3x3(x, w, b, pad):
    ci, h, wd = len(x), len(x[0]), len(x[0][0])
    co = len(w)
    out = [[[b[o] for _ in range(wd)] for _ in range(h)] for o in range(co)]
    for o in range(co):
        for y in range(h):
            for xx in range(wd):
                for i in range(ci):
                    for dy in range(3):
                        for dx in range(3):
                            yy, xc = y + dy - 1, xx + dx - 1
                            val = x[i][yy][xc] if 0 <= yy < h and 0 <= xc < wd else pad[i]
                            out[o][y][xx] += w[o][i][dy][dx] * val
    return out


def naive_pool(x, pad, op):
    h, w = len(x), len(x[0])
    ho, wo = (h - 1) // 2 + 1, (w - 1) // 2 + 1
    out = []
    for y in range(ho):
        row = []
        for xx in range(wo):
            vals = [x[r][c] for r in range(2 * y - 1, 2 * y + 2) for c in
                    range(2 * xx - 1, 2 * xx + 2) if 0 <= r < h and 0 <= c < w]
            acc = pad
            for v in vals:
                acc = op(acc, v)
            row.append(acc)
        out.append(row)
    return out


ints = st.integers(-BIG, BIG)


@given(st.lists(st.tuples(ints, ints, st.integers(1, BIG)), min_size=1, max_size=20))
def test_lif_step_matches_naive(rows):
    v, x, th = (np.array(c, np.int64) for c in zip(*rows, strict=True))
    s, vn = ops.lif_step(v, x, th)
    for i, (a, b, t) in enumerate(rows):
        assert (int(s[i]), int(vn[i])) == naive_lif(a, b, t)
    assert s.dtype == np.uint8


@given(st.integers(1, 6), st.integers(1, 5), st.data())
def test_lif_run_matches_naive(t_steps, n, data):
    xs = data.draw(hnp.arrays(np.int64, (t_steps, n), elements=st.integers(-1000, 1000)))
    th = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(1, 600)))
    out = ops.lif_run(xs, th)
    for j in range(n):
        v = 0
        for t in range(t_steps):
            s, v = naive_lif(v, int(xs[t, j]), int(th[j]))
            assert out[t, j] == s


@given(st.integers(1, 6), st.integers(1, 5), st.integers(1, 4), st.integers(0, 3), st.data())
def test_sdsa_step_matches_naive(n, c, theta, shift, data):
    q, k, v = (data.draw(hnp.arrays(np.uint8, (2, n, c), elements=st.integers(0, 1)))
               for _ in range(3))
    vm = data.draw(hnp.arrays(np.int64, (2, c), elements=st.integers(0, 3)))
    out, mask, vn = ops.sdsa_step(q, k, v, vm, theta, shift)
    for b in range(2):
        for ch in range(c):
            kv = sum(int(k[b, i, ch]) & int(v[b, i, ch]) for i in range(n))
            s, nv = naive_lif(int(vm[b, ch]), kv << shift, theta)
            assert (mask[b, ch], vn[b, ch]) == (s, nv)
            for i in range(n):
                assert out[b, i, ch] == (q[b, i, ch] & s)


@given(st.integers(1, 8), st.data())
def test_sdsa_stateless_or(n, data):
    """θ = 1, shift = 1: the mask is OR_n(K∧V) and the state stays 0 at every step."""
    vm = np.zeros(3, np.int64)
    for _ in range(4):
        q, k, v = (data.draw(hnp.arrays(np.uint8, (n, 3), elements=st.integers(0, 1)))
                   for _ in range(3))
        out, mask, vm = ops.sdsa_step(q, k, v, vm, 1, 1)
        assert np.array_equal(mask, (k & v).max(axis=0))
        assert not vm.any()


@given(st.integers(1, 7), st.integers(1, 7), st.data())
def test_pools_match_naive(h, w, data):
    s = data.draw(hnp.arrays(np.uint8, (h, w), elements=st.integers(0, 1)))
    x = data.draw(hnp.arrays(np.int64, (h, w), elements=st.integers(-BIG, BIG)))
    assert ops.spike_maxpool(s).tolist() == naive_pool(s.tolist(), 0, lambda a, b: a | b)
    assert ops.int_maxpool(x).tolist() == naive_pool(x.tolist(), -(1 << 63), max)


@given(st.integers(-(1 << 30), 1 << 30), st.integers(-(1 << 30), 1 << 30), st.integers(0, 32))
def test_align_add_is_exact_shift(stream, acc, k):
    assert int(ops.align_add(stream, acc, k)) == stream + acc * 2 ** k


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4),
       st.booleans(), st.data())
def test_conv3x3_matches_naive(ci, co, h, w, pixels, data):
    hi = 255 if pixels else 1
    x = data.draw(hnp.arrays(np.uint8, (ci, h, w), elements=st.integers(0, hi)))
    big = data.draw(st.booleans())
    wr = st.integers(-BIG, BIG) if big else st.integers(-127, 127)
    wt = data.draw(hnp.arrays(np.int64, (co, ci, 3, 3), elements=wr))
    b = data.draw(hnp.arrays(np.int64, (co,), elements=st.integers(-BIG, BIG)))
    pad = data.draw(hnp.arrays(np.int64, (ci,), elements=st.integers(0, hi)))
    got = ops.conv3x3(x, wt, b, pad)
    assert got.dtype == np.int64
    assert got.tolist() == naive_conv3x3(x.tolist(), wt.tolist(), b.tolist(), pad.tolist())


def test_conv3x3_extremes_exact():
    """All-ones input and all-max weights: the largest sums, float fast path must stay exact."""
    x = np.full((2, 16, 8, 8), 255, np.uint8)
    w = np.full((4, 16, 3, 3), 127, np.int64)
    got = ops.conv3x3(x, w, np.zeros(4, np.int64), 255)
    assert (got == 255 * 127 * 16 * 9).all()
    w = np.full((4, 16, 3, 3), -(1 << 33), np.int64)
    got = ops.conv3x3(x, w, np.zeros(4, np.int64), 255)
    assert (got == -(1 << 33) * 255 * 16 * 9).all()


@given(st.integers(1, 5), st.integers(1, 6), st.integers(1, 4), st.data())
def test_accumulate_and_conv1x1_match_naive(n, ci, co, data):
    s = data.draw(hnp.arrays(np.uint8, (n, ci), elements=st.integers(0, 1)))
    wr = st.integers(-BIG, BIG) if data.draw(st.booleans()) else st.integers(-127, 127)
    w = data.draw(hnp.arrays(np.int64, (co, ci), elements=wr))
    b = data.draw(hnp.arrays(np.int64, (co,), elements=st.integers(-BIG, BIG)))
    ref = [[b[o] + sum(int(w[o, i]) for i in range(ci) if s[t, i]) for o in range(co)]
           for t in range(n)]
    assert ops.conv1x1(s, w, b).tolist() == ref
    assert ops.accumulate_events(s, w.T, b).tolist() == ref


@given(st.data())
def test_exact_matmul_paths(data):
    a = data.draw(hnp.arrays(np.int64, (3, 4), elements=st.integers(-(1 << 20), 1 << 20)))
    b = data.draw(hnp.arrays(np.int64, (4, 2), elements=st.integers(-(1 << 30), 1 << 30)))
    ref = [[sum(int(a[i, k]) * int(b[k, j]) for k in range(4)) for j in range(2)]
           for i in range(3)]
    assert ops.exact_matmul(a, b).tolist() == ref
