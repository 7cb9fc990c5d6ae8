"""DVS-mode attention (the reference's ``dvs_mode``) through the integer flow: the erosions of
the integer semantics against the float model's, the ``sdsa_dvs`` kind in the golden model and
the quantize report."""

import dataclasses

import numpy as np
import pytest
import torch
from _events import DVS_CONFIG, event_frames, float_event_model, qat_spikes_equal_golden

from sdtforge.model import sdt
from sdtforge.quantize import ir
from sdtforge.quantize.quantizer import quantize_model
from sdtforge.quantize.report import isolated_agreement
from sdtforge.sim import golden, ops


@pytest.mark.parametrize("h, w, c, heads", [(4, 4, 16, 2), (3, 5, 24, 3), (1, 7, 8, 8),
                                            (6, 2, 12, 1)])
def test_the_erosions_equal_the_float_models(h, w, c, heads):
    """``ops.erode_map`` / ``ops.erode_heads`` on token tensors ``[..., N, C]`` against the
    float model's max-pools on ``[T, B, C, H, W]`` maps, on sparse random spikes."""
    rng = np.random.default_rng(h * 100 + w * 10 + c)
    maps = (rng.random((2, 3, c, h, w)) < 0.15).astype(np.uint8)
    tokens = maps.reshape(2, 3, c, h * w).transpose(0, 1, 3, 2)     # [T, B, N, C]

    def as_maps(t):
        return t.transpose(0, 1, 3, 2).reshape(maps.shape)

    x = torch.as_tensor(maps, dtype=torch.float32)
    assert np.array_equal(as_maps(ops.erode_map(tokens, h, w)), sdt._erode_map(x).numpy())
    assert np.array_equal(as_maps(ops.erode_heads(tokens, heads)),
                          sdt._erode_heads(x, heads).numpy())
    # The token erosion runs across row ends but stops at the first and last token; the
    # channel erosion stops at head boundaries.
    if h > 1 and c // heads > 1:
        one = np.zeros((h * w, c), np.uint8)
        one[w - 1, c // heads - 1] = 1              # the last token of row 0, a head's end
        got = ops.erode_heads(one, heads)
        assert got[w, c // heads - 2] == 1          # row 1's first token, the channel before
        assert heads == 1 or got[w - 1, c // heads] == 0     # not the next head's first


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    path = tmp_path_factory.mktemp("dvs") / "dvs.sfm"
    model = float_event_model(DVS_CONFIG)
    ir.save(quantize_model(model), path)
    return model, ir.load(path)


def test_a_dvs_model_quantizes_to_sdsa_dvs(quantized):
    _, q = quantized
    kinds = [lay.KIND for lay in q.layers]
    assert "sdsa_dvs" in kinds and "sdsa" not in kinds and q.config["dvs"] is True


def test_the_golden_model_follows_the_float_model(quantized):
    """Each integer layer fed the float network's inputs: the DVS attention agrees exactly
    (its mask and output are integer-exact by construction), the rest almost everywhere; the
    end-to-end spikes and classes follow the float model."""
    model, q = quantized
    x = event_frames(DVS_CONFIG, batch=8)
    iso = isolated_agreement(model, q, x)
    assert iso["block0.attn.out"] == 1.0 and iso["block0.attn.mask"] == 1.0, iso
    assert min(iso.values()) > 0.98, iso
    with torch.no_grad():
        logits, spikes = model(torch.as_tensor(x), return_spikes=True)
    res = golden.run(q, x, spikes=True)
    out = res.spikes["block0.attn.out"]
    assert 0.02 < out.mean() < 0.98  # the erosions leave something to compare
    assert (out == spikes["block0.attn.out"].numpy()).mean() > 0.95
    assert (res.classes == logits.argmax(1).numpy()).mean() >= 0.75


def test_the_golden_model_erodes(quantized):
    """The same integer model without the erosions (its ``sdsa_dvs`` taken as plain ``sdsa``)
    gives other attention outputs: the golden op does erode."""
    _, q = quantized
    x = event_frames(DVS_CONFIG, batch=2)
    plain = ir.IntegerModel(config={k: v for k, v in q.config.items() if k != "dvs"},
                            layers=[ir.SDSA(**{f.name: getattr(lay, f.name)
                                               for f in dataclasses.fields(lay)})
                                    if lay.KIND == "sdsa_dvs" else lay for lay in q.layers],
                            stream_theta=q.stream_theta, stream_scale=q.stream_scale,
                            stream_bits=q.stream_bits)
    a = golden.run(q, x, spikes=True).spikes["block0.attn.out"]
    b = golden.run(plain, x, spikes=True).spikes["block0.attn.out"]
    assert a.sum() > b.sum()  # erosion is a dilation of spikes


def test_dvs_counts(quantized):
    """The golden model counts the DVS attention's work as the hardware does it: the column
    counts add one per eroded ``K' ∧ V'`` spike; the reads are the erosions' windows."""
    _, q = quantized
    x = event_frames(DVS_CONFIG, batch=2)
    res = golden.run(q, x, spikes=True)
    layer = q.layer("block0.attn.sdsa")
    counts = res.counts[layer.name]
    (th, tw), steps = ir.expected_geometry(q.config)["token_hw"], DVS_CONFIG.T
    cells = steps * 2 * th * tw * layer.channels

    def tokens(name):
        s = res.spikes[name]                                        # [T, B, C, H, W]
        return s.reshape(*s.shape[:3], -1).transpose(0, 1, 3, 2)    # [T, B, N, C]

    k, v = (ops.erode_map(tokens(f"block0.attn.{n}"), th, tw) for n in "kv")
    assert counts["acs"] == int(ops.erode_heads(k & v, layer.heads).sum())
    assert counts["spike_reads"] == 45 * cells
    assert counts["spike_writes"] == 3 * cells + steps * 2 * layer.channels


def test_dvs_hardware_refusals(quantized):
    """A DVS model compiles only onto hardware built for its heads; a head size no word width
    can serve is named as such (one line each)."""
    from sdtforge.errors import UserError
    from sdtforge.hdl.compile import AccelConfig, compile_model

    _, q = quantized
    built = compile_model(q, lanes=4, width=8).config
    assert built.dvs_head_channels == 8
    for hd, says in ((0, "built without DVS-mode attention"),
                     (4, "built for heads of 4 channels")):
        with pytest.raises(UserError, match=says) as e:
            compile_model(q, dataclasses.replace(built, dvs_head_channels=hd))
        assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="no word width can"):
        AccelConfig(width=16, dvs_head_channels=12)
    with pytest.raises(UserError, match="build with --width 8"):
        AccelConfig(width=32, dvs_head_channels=24)
    AccelConfig(width=32, dvs_head_channels=8)   # heads inside a word
    AccelConfig(width=8, dvs_head_channels=24)   # three words a head


def test_the_qat_forward_of_a_dvs_model_equals_the_golden_model(quantized):
    """QAT's integer-equivalent forward runs the float model's erosions, which equal the
    integer ones: every spike, the attention's mask and output among them, equals the golden
    model's (so QAT can fine-tune a DVS-mode model)."""
    model, q = quantized
    spikes = qat_spikes_equal_golden(model, q, event_frames(DVS_CONFIG, batch=4, seed=2))
    assert spikes["block0.attn.out"].any()
