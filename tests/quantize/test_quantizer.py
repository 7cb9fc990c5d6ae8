"""Quantizer: folding, errors a user can cause, golden vs float agreement, acceptance."""

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from spikeforge.cli import main  # noqa: E402
from spikeforge.errors import UserError  # noqa: E402
from spikeforge.model import (  # noqa: E402
    FORMAT,
    SHIPPED_CHECKPOINTS,
    SDTConfig,
    SpikeDrivenTransformer,
)
from spikeforge.quantize import ir  # noqa: E402
from spikeforge.quantize.quantizer import (  # noqa: E402
    QuantRules,
    fold_conv_bn,
    quantize_checkpoint,
    quantize_model,
)
from spikeforge.sim import golden  # noqa: E402

SHIPPED = SHIPPED_CHECKPOINTS["digits-tiny"]
needs_shipped = pytest.mark.skipif(not SHIPPED.exists(), reason="no shipped checkpoint yet")


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
    with pytest.raises(UserError, match="spikeforge checkpoint"):
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
    from spikeforge.sim.evaluate import eval_command

    class Args:
        pass
    args = Args()
    args.path, args.json, args.data_dir, args.limit = out, True, None, 16
    assert eval_command(args) == 0
    assert '"energy"' in capsys.readouterr().out


@needs_shipped
def test_shipped_8bit_within_half_a_point(tmp_path):
    from spikeforge.quantize.quantizer import load_float
    from spikeforge.quantize.report import compare
    model, ckpt, _ = load_float(SHIPPED)
    q = quantize_checkpoint(SHIPPED, weight_bits=8)
    rep = compare(model, q, ckpt)
    assert rep["integer_accuracy"] >= rep["float_accuracy"] - 0.005, rep
    assert min(rep["spike_agreement"].values()) > 0.8, rep


@needs_shipped
@pytest.mark.slow
def test_shipped_4bit_qat_within_two_points():
    from spikeforge.quantize.quantizer import load_float
    from spikeforge.quantize.report import compare
    model, ckpt, _ = load_float(SHIPPED)
    q = quantize_checkpoint(SHIPPED, weight_bits=4, qat_epochs=3)
    rep = compare(model, q, ckpt)
    assert rep["integer_accuracy"] >= rep["float_accuracy"] - 0.02, rep
