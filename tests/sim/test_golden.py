"""Golden model on random integer models: shapes, counts, determinism, and no overflow on
adversarial inputs (every traced value within the layer's declared width)."""

import numpy as np
import pytest

from sdtforge.errors import UserError
from sdtforge.quantize import ir, synthetic
from sdtforge.sim import energy, golden, ops


def _fits(values, bits):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return int(values.min()) >= lo and int(values.max()) <= hi


def _checker(seen):
    def trace(layer, key, values):
        assert _fits(values, layer.widths[key]), (layer.name, key, values.min(), values.max())
        seen.add((layer.name, key))
        if key in ("acc", "x") and "sum" in layer.widths and not isinstance(layer, ir.Head) \
                or (isinstance(layer, ir.Head) and key == "x"):
            theta = layer.theta if not isinstance(layer, ir.SDSA) else layer.theta
            th = np.asarray(theta)
            if values.ndim >= 4 and th.ndim == 1 and values.shape[-3] == th.shape[0]:
                th = th[:, None, None]
            seq = values if values.ndim > 3 or isinstance(layer, ir.Head) else values[None]
            v = np.zeros(seq.shape[1:], np.int64)
            for t in range(seq.shape[0]):
                s_sum = v + seq[t]
                assert _fits(s_sum, layer.widths["sum"]), (layer.name, "sum")
                _, v = ops.lif_step(v, seq[t], th)
                assert _fits(v, layer.widths["v"]), (layer.name, "v")
    return trace


def _extreme_model(sign, seed=0):
    """All weights ±max and thresholds 1: every neuron fires, sums reach their bounds."""
    m = synthetic.random_model(seed=seed)
    qmax = (1 << (m.config["weight_bits"] - 1)) - 1
    for layer in m.layers:
        if "weight" in layer.ARRAYS:
            layer.weight = np.full_like(layer.weight, sign * qmax)
        if "theta" in layer.ARRAYS:
            layer.theta = np.ones_like(layer.theta)
    m.stream_theta = np.ones_like(m.stream_theta)
    return ir.loads(ir.dumps(ir.finalize(m)))


@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("pixel", [0, 255])
def test_no_overflow_on_adversarial_inputs(sign, pixel):
    m = _extreme_model(sign)
    images = np.full((2, 1, 8, 8), pixel, np.uint8)
    seen = set()
    golden.run(m, images, trace=_checker(seen))
    assert ("head", "logits") in seen and ("block0.mlp.fc2", "stream") in seen


def test_all_ones_reach_the_bound():
    """With everything firing, the spike convs' accumulators equal the derived maximum, so the
    derived width is tight there."""
    m = _extreme_model(1)
    maxima = {}

    def trace(layer, key, values):
        maxima[(layer.name, key)] = int(values.max())
    golden.run(m, np.full((1, 1, 8, 8), 255, np.uint8), trace=trace)
    q = m.layer("block0.mlp.fc1")
    assert maxima[("block0.mlp.fc1", "acc")] == int(q.bias.max() + 127 * q.in_channels)
    assert ir.signed_width(0, maxima[("block0.mlp.fc1", "acc")]) == q.widths["acc"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_models_never_overflow(seed):
    m = synthetic.random_model(seed=seed, theta_max=4)
    rng = np.random.default_rng(seed)
    golden.run(m, rng.integers(0, 256, (8, 1, 8, 8)).astype(np.uint8), trace=_checker(set()))


def test_shapes_counts_and_determinism():
    m = synthetic.random_model(seed=1, theta_max=8)
    x = np.random.default_rng(0).integers(0, 256, (5, 1, 8, 8)).astype(np.uint8)
    r = golden.run(m, x, spikes=True)
    assert r.logits.shape == (5, 10) and r.logits.dtype == np.int64
    assert np.array_equal(r.classes, np.argmax(r.logits, 1))
    t = m.config["T"]
    assert r.spikes["sps.lif0"].shape == (t, 5, 4, 8, 8)
    assert r.spikes["sps.lif3"].shape == (t, 5, 32, 4, 4)
    assert r.spikes["block0.attn.mask"].shape == (t, 5, 32)
    assert r.spikes["block0.mlp.hidden"].shape == (t, 5, 128, 4, 4)
    assert r.spikes["head.lif"].shape == (t, 5, 32)
    assert all(s.dtype == np.uint8 for s in r.spikes.values())
    # batch of one equals the same image inside a batch (vectorization is per image)
    r1 = golden.run(m, x[2:3])
    assert np.array_equal(r1.logits[0], r.logits[2])
    c = r.counts
    assert c["sps.conv0"]["macs"] == 5 * 4 * 1 * 9 * 64
    # 1×1 ACs: fan-out × input spikes
    assert c["block0.attn.q"]["acs"] == 32 * int(r.spikes["block0.attn.lif_in"].sum())
    assert c["block0.mlp.fc2"]["acs"] == 32 * int(r.spikes["block0.mlp.hidden"].sum())
    assert c["head"]["acs"] == 10 * int(r.spikes["head.lif"].sum())
    # the mask is OR(K∧V) (stateless special case)
    k, v = r.spikes["block0.attn.k"], r.spikes["block0.attn.v"]
    assert np.array_equal(r.spikes["block0.attn.mask"], (k & v).max(axis=(3, 4)))
    assert c["block0.attn.sdsa"]["acs"] == int((k & v).sum())


def test_3x3_acs_count_border_fanout():
    m = synthetic.random_model(seed=1, theta_max=8)
    r = golden.run(m, np.zeros((1, 1, 8, 8), np.uint8), spikes=True)
    s = r.spikes["sps.lif0"]  # sps.conv1 reads it unpooled (pooling "0001")
    ref = 0
    for _t, _, _, y, x in zip(*np.nonzero(s), strict=True):
        ny = len([v for v in (y - 1, y, y + 1) if 0 <= v < 8])
        nx = len([v for v in (x - 1, x, x + 1) if 0 <= v < 8])
        ref += 8 * ny * nx
    assert r.counts["sps.conv1"]["acs"] == ref


def test_energy_and_sdsa_ratio():
    m = synthetic.random_model(seed=1, theta_max=8)
    r = golden.run(m, np.zeros((2, 1, 8, 8), np.uint8))
    e = energy.energy(r.per_image())
    tot = r.totals()
    assert e["total_uj"] == pytest.approx((4.6 * tot["macs"] + 0.9 * tot["acs"]) * 1e-6)
    assert energy.sdsa_ratio(196, 512, 4, 0.1) == pytest.approx(
        4.6 * 2 * 196 * 196 * 512 / (0.9 * 4 * 0.1 * 196 * 512))
    ratios = energy.sdsa_ratio_from_counts(m, r.per_image())
    assert set(ratios) == {"block0.attn.sdsa"}
    sd = ratios["block0.attn.sdsa"]
    if sd["e_sdsa_pj"]:
        assert sd["ratio"] == pytest.approx(sd["e_vsa_pj"] / sd["e_sdsa_pj"])
    assert sd["e_vsa_pj"] == pytest.approx(4.6 * 2 * 16 * 16 * 32)


def test_bad_images_are_user_errors():
    m = synthetic.random_model()
    with pytest.raises(UserError, match="uint8"):
        golden.run(m, np.zeros((1, 1, 8, 8), np.float32))
    with pytest.raises(UserError, match="shape|uint8"):
        golden.run(m, np.zeros((1, 3, 8, 8), np.uint8))
