"""Quantizer: folding, errors a user can cause, golden vs float agreement, acceptance."""

import copy
import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sdtforge.cli import main  # noqa: E402
from sdtforge.errors import UserError  # noqa: E402
from sdtforge.model import (  # noqa: E402
    FORMAT,
    SHIPPED_CHECKPOINTS,
    SDTConfig,
    SpikeDrivenTransformer,
)
from sdtforge.quantize import ir  # noqa: E402
from sdtforge.quantize.quantizer import (  # noqa: E402
    QuantRules,
    fold_conv_bn,
    plan,
    quantize_checkpoint,
    quantize_model,
)
from sdtforge.sim import golden  # noqa: E402

SHIPPED = SHIPPED_CHECKPOINTS["digits-tiny"]


def _random_ckpt(seed=0, gain=60.0):
    """A random float SDT whose neurons fire (weights scaled up), as a checkpoint dict."""
    torch.manual_seed(seed)
    cfg = SDTConfig(in_channels=1, img_size=(8, 8), embed_dims=32, depths=1, T=4,
                    pooling_stat="0001", num_classes=10, mean=(0.3,), std=(0.4,))
    m = SpikeDrivenTransformer(cfg).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.ndim > 1:
                p.mul_(gain)
            elif "bn" in name and name.endswith("bias"):
                p.uniform_(-0.3, 0.3)
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
    ckpt = {"format": FORMAT, "state_dict": m.state_dict(), "config": dataclasses.asdict(cfg),
            "preset": None, "dataset": "digits", "seed": seed, "train_settings": {},
            "metrics": {}}
    return m, ckpt


def test_fold_matches_eval_bn():
    m, _ = _random_ckpt()
    conv, bn = m.block[0].mlp.fc1_conv, m.block[0].mlp.fc1_bn
    w, b = fold_conv_bn(conv, bn)
    x = torch.randn(3, 32, 4, 4)
    with torch.no_grad():
        ref = bn(conv(x)).double().numpy()
    got = np.einsum("oi,bihw->bohw", w[:, :, 0, 0], x.double().numpy()) + b[:, None, None]
    assert np.allclose(got, ref, atol=1e-4)


def test_quantized_random_model_is_valid_and_agrees():
    m, ckpt = _random_ckpt()
    q = quantize_checkpoint(ckpt)
    assert q.config["weight_bits"] == 8
    assert q.layer("block0.attn.sdsa").stateless_or
    writers = [la for la in q.layers if la.KIND.startswith("stream_conv")]
    # the finest writer sets the stream scale: some writer of every channel has shift 0
    assert (np.min([w.shift for w in writers], axis=0) == 0).all()
    x = np.random.default_rng(0).integers(0, 256, (32, 1, 8, 8)).astype(np.uint8)
    with torch.no_grad():
        _, spikes = m(torch.from_numpy(x), return_spikes=True)
    res = golden.run(q, x, spikes=True)
    assert set(res.spikes) == set(spikes)
    for name in ("sps.lif0", "sps.lif1"):
        agree = (spikes[name].numpy().astype(np.uint8) == res.spikes[name]).mean()
        assert agree > 0.98, (name, agree)


def test_pixel_padding_contributes_zero():
    """An image equal to the zero point everywhere gives acc = round(b'/s) at every position,
    border included (padding is exactly the normalized zero)."""
    _, ckpt = _random_ckpt()
    q = quantize_checkpoint(ckpt)
    conv0 = q.layers[0]
    img = np.full((1, 1, 8, 8), conv0.zero_point[0], np.uint8)
    seen = {}
    golden.run(q, img, trace=lambda la, k, v: seen.setdefault((la.name, k), v))
    acc = seen[("sps.conv0", "acc")][0]
    assert (acc == acc[:, :1, :1]).all()


def test_deterministic_bytes():
    _, ckpt = _random_ckpt()
    assert ir.dumps(quantize_checkpoint(ckpt)) == ir.dumps(quantize_checkpoint(ckpt))


def test_refuses_bad_tau_and_foreign_input():
    m, ckpt = _random_ckpt()
    m.block[0].attn.q_lif.tau = 3.0
    with pytest.raises(UserError, match="power-of-two"):
        quantize_model(m)
    m.block[0].attn.q_lif.tau = 4.0
    with pytest.raises(UserError, match="τ = 2"):
        quantize_model(m)
    with pytest.raises(UserError, match="sdtforge checkpoint"):
        quantize_checkpoint({"weights": 1})
    bad = dict(ckpt, state_dict={"x": torch.zeros(1)})
    with pytest.raises(UserError, match="not a Spike-Driven Transformer"):
        quantize_checkpoint(bad)
    with pytest.raises(UserError, match="weight-bits"):
        QuantRules(12)
    m2, _ = _random_ckpt()
    m2.extra = torch.nn.Dropout()
    with pytest.raises(UserError, match="unsupported layer"):
        quantize_model(m2)


def test_cli_quantize_and_eval(tmp_path, capsys):
    _, ckpt = _random_ckpt()
    path = tmp_path / "c.pt"
    torch.save(ckpt, path)
    out = tmp_path / "m.sfm"
    assert main(["quantize", str(path), "--out", str(out), "--limit", "20", "--json"]) == 0
    model = ir.load(out)
    assert model.provenance["integer_accuracy"] is not None
    assert len(model.provenance["checkpoint_sha256"]) == 64
    capsys.readouterr()
    assert main(["quantize", str(tmp_path / "missing.pt"), "--out", str(out)]) == 2
    from sdtforge.sim.evaluate import eval_command

    class Args:
        pass
    args = Args()
    args.path, args.json, args.data_dir, args.limit = out, True, None, 16
    assert eval_command(args) == 0
    assert '"energy"' in capsys.readouterr().out


def _fake_quant_folded(model, rules, layer):
    """The folded weight the QAT forward computes with for ``layer`` (float64)."""
    from sdtforge.quantize import qat
    from sdtforge.quantize.quantizer import conv_bn_pairs
    params = qat.fake_quant_params(model, rules)
    names = {mod: name for name, mod in model.named_modules()}
    conv, bn = next((c, b) for n, c, b in conv_bn_pairs(model) if n == layer.name)
    g = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double().numpy()
    w = params[names[conv] + ".weight"].detach().double().numpy()
    w = w * g.reshape(-1, *([1] * (w.ndim - 1)))
    if layer.name == "sps.conv0":
        w = w / (255.0 * np.asarray(model.config.std)).reshape(1, -1, 1, 1)
    return w.reshape(layer.weight.shape)


@pytest.mark.parametrize("bits", [4, 8])
def test_fake_quant_weights_are_the_ir_integers(bits):
    """QAT computes with exactly the integers the quantizer stores, times their scales —
    per-channel scales from folded BN, stream writers at s_r·2^k, the head per tensor."""
    from sdtforge.quantize import qat
    m, _ = _random_ckpt(seed=2)
    rules = QuantRules(bits)
    q = quantize_model(m, bits)
    for layer in q.layers:
        if "weight" not in layer.ARRAYS or layer.KIND == "head":
            continue
        want = layer.weight * layer.scale.reshape(-1, *([1] * (layer.weight.ndim - 1)))
        got = _fake_quant_folded(m, rules, layer)
        assert np.allclose(got, want, rtol=1e-5, atol=1e-7 * np.abs(want).max()), layer.name
    head = q.layer("head")
    params = qat.fake_quant_params(m, rules)
    assert np.allclose(params["head.weight"].detach().numpy(), head.weight * head.scale,
                       rtol=1e-6)


@pytest.mark.parametrize("bits", [4, 8])
def test_integer_forward_equals_golden(bits):
    """The QAT forward (fake-quantized weights and biases, integer thresholds, floored
    membranes, integer zero point) reproduces every spike and the class of the golden model."""
    from sdtforge.quantize.qat import integer_forward
    m, _ = _random_ckpt(seed=1)
    q = quantize_model(m, bits)
    x = np.random.default_rng(bits).integers(0, 256, (16, 1, 8, 8)).astype(np.uint8)
    with torch.no_grad():
        logits, spikes = integer_forward(m, torch.from_numpy(x), bits, return_spikes=True)
    res = golden.run(q, x, spikes=True)
    for name, s in spikes.items():
        assert np.array_equal(s.numpy().astype(np.uint8), res.spikes[name]), name
    head = q.layer("head")
    assert np.allclose(logits.numpy() * q.config["T"], res.logits * head.scale, atol=1e-4)


def test_isolated_agreement_is_exact_for_an_exact_float_model():
    """Fed the float network's own inputs, an integer layer disagrees only through its own
    rounding: against the integer-equivalent float forward every layer agrees exactly."""
    from sdtforge.quantize import qat
    from sdtforge.quantize.report import isolated_agreement
    m, _ = _random_ckpt(seed=1)
    q = quantize_model(m, 6)
    x = np.random.default_rng(0).integers(0, 256, (8, 1, 8, 8)).astype(np.uint8)
    rules = QuantRules(6)
    p = plan(m, rules)
    params = qat.fake_quant_params(m, rules, p)
    # bake the fake-quantized parameters into a copy so the report's plain forward uses them
    exact = copy.deepcopy(m)
    with torch.no_grad():
        for name, value in params.items():
            exact.get_parameter(name).copy_(value)
    with qat.integer_neurons(exact, p):
        agree = isolated_agreement(exact, q, x)
    assert set(agree) >= {"sps.lif3", "block0.attn.lif_in", "block0.mlp.lif_in", "head.lif"}
    assert min(agree.values()) > 0.999, agree


def test_shipped_8bit_within_half_a_point(tmp_path):
    from sdtforge.quantize.quantizer import load_float
    from sdtforge.quantize.report import compare
    model, ckpt, _ = load_float(SHIPPED)
    q = quantize_checkpoint(SHIPPED, weight_bits=8)
    rep = compare(model, q, ckpt)
    assert rep["images"] == 360
    assert rep["integer_accuracy"] >= rep["float_accuracy"] - 0.005, rep
    # end to end, small differences amplify along the network; each layer on its own is exact
    # up to its rounding (docs/integer-semantics.md §11)
    assert min(rep["spike_agreement"].values()) > 0.85, rep
    assert min(rep["isolated_agreement"].values()) >= 0.99, rep


def test_shipped_4bit_qat_within_two_points():
    from sdtforge.quantize.qat import integer_forward
    from sdtforge.quantize.quantizer import load_float
    from sdtforge.quantize.report import compare
    model, ckpt, _ = load_float(SHIPPED)
    q, tuned = quantize_checkpoint(SHIPPED, weight_bits=4, qat_epochs=3, return_float=True)
    rep = compare(tuned, q, ckpt, isolated=False)
    float_acc = ckpt["metrics"]["test_accuracy"]
    assert rep["integer_accuracy"] >= float_acc - 0.02, rep
    # the tuned model quantizes to the integers it was trained with
    from sdtforge.model import load_dataset
    x, y = load_dataset("digits", "test")
    with torch.no_grad():
        logits = integer_forward(tuned, torch.from_numpy(x), 4)
    assert (logits.argmax(1).numpy() == y).mean() == pytest.approx(rep["integer_accuracy"])
