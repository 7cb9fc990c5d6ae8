"""The SDT v1 model: structure, spike recording, SDSA semantics, presets, reference loading."""

import math

import pytest
import torch
from _reference import reference_state_dict as _reference_state_dict

from sdtforge.errors import UserError
from sdtforge.model import (
    PRESETS,
    SDTConfig,
    SpikeDrivenTransformer,
    load_reference_checkpoint,
    spike_names,
)
from sdtforge.model.lif import MultiStepLIF


def _tiny(**kw):
    args = dict(in_channels=1, img_size=(8, 8), embed_dims=32, depths=2, T=4,
                pooling_stat="0001", num_classes=10, mean=(0.3,), std=(0.4,))
    args.update(kw)
    return SDTConfig(**args)


def _images(config, b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, config.in_channels, *config.img_size), dtype=torch.uint8,
                         generator=g)


def test_spike_names_and_shapes():
    cfg = _tiny(pooling_stat="0011")
    model = SpikeDrivenTransformer(cfg).eval()
    logits, spikes = model(_images(cfg), return_spikes=True)
    assert logits.shape == (2, 10)
    assert list(spikes) == spike_names(cfg)
    t, b, d, (h, w) = 4, 2, 32, cfg.token_grid
    assert (h, w) == (2, 2)
    expected = {"sps.lif0": (t, b, 4, 8, 8), "sps.lif1": (t, b, 8, 8, 8),
                "sps.lif2": (t, b, 16, 8, 8), "sps.lif3": (t, b, d, h, w),
                "head.lif": (t, b, d)}
    for i in range(2):
        for n in ("lif_in", "q", "k", "v", "out"):
            expected[f"block{i}.attn.{n}"] = (t, b, d, h, w)
        expected[f"block{i}.attn.mask"] = (t, b, d)
        expected[f"block{i}.mlp.lif_in"] = (t, b, d, h, w)
        expected[f"block{i}.mlp.hidden"] = (t, b, 4 * d, h, w)
    assert {k: tuple(v.shape) for k, v in spikes.items()} == expected
    for v in spikes.values():
        assert v.dtype == torch.float32 and set(v.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(model(_images(cfg)), logits)  # no state kept between calls


def test_sdsa_mask_is_or_of_k_and_v():
    g = torch.Generator().manual_seed(3)
    k = (torch.rand(4, 3, 16, 5, generator=g) < 0.2).float()
    v = (torch.rand(4, 3, 16, 5, generator=g) < 0.2).float()
    kv = (k * v).sum(-1)
    mask = MultiStepLIF(v_threshold=0.5)(kv)
    assert torch.equal(mask, (k * v).amax(-1))
    assert 0 < mask.mean() < 1


def test_sdsa_in_model_masks_q():
    cfg = _tiny()
    model = SpikeDrivenTransformer(cfg).eval()
    _, s = model(_images(cfg, b=3), return_spikes=True)
    kv_or = (s["block0.attn.k"] * s["block0.attn.v"]).flatten(3).amax(-1)
    assert torch.equal(s["block0.attn.mask"], kv_or)
    assert torch.equal(s["block0.attn.out"], s["block0.attn.q"] * kv_or[..., None, None])


def test_input_must_be_uint8():
    model = SpikeDrivenTransformer(_tiny())
    with pytest.raises(TypeError, match="uint8"):
        model(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="shape"):
        model(torch.zeros(1, 1, 7, 8, dtype=torch.uint8))


def test_normalization_is_not_a_buffer():
    model = SpikeDrivenTransformer(_tiny())
    assert model.mean == (0.3,) and model.std == (0.4,)
    assert not any("mean" == k.split(".")[-1] or "std" in k for k in model.state_dict())


@pytest.mark.parametrize("bad, match", [
    (dict(embed_dims=36), "embed_dims"), (dict(pooling_stat="001"), "pooling_stat"),
    (dict(mean=(0.1, 0.2)), "mean"), (dict(std=(0.0,)), "std"), (dict(T=0), "T"),
])
def test_config_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        _tiny(**bad)


@pytest.mark.parametrize("name", [n for n in PRESETS if not n.startswith("imagenet")])
def test_presets_build_and_run(name):
    cfg = PRESETS[name].config
    model = SpikeDrivenTransformer(cfg).eval()
    assert sum(p.numel() for p in model.parameters()) == cfg.num_parameters
    if cfg.encoding == "events":
        x = torch.randint(0, 3, (1, cfg.T, cfg.in_channels, *cfg.img_size)).float()
    else:
        x = _images(cfg, b=1)
    with torch.no_grad():
        assert model(x).shape == (1, cfg.num_classes)


@pytest.mark.slow
def test_imagenet_preset_builds_and_runs():
    cfg = PRESETS["imagenet-8-512"].config
    model = SpikeDrivenTransformer(cfg).eval()
    assert sum(p.numel() for p in model.parameters()) == cfg.num_parameters
    with torch.no_grad():
        assert model(_images(cfg, b=1)).shape == (1, 1000)


def test_imagenet_preset_shape():
    cfg = PRESETS["imagenet-8-512"].config
    assert cfg.num_tokens == 196 and cfg.depths == 8 and cfg.img_size == (224, 224)


def test_digits_tiny_size():
    assert 25_000 <= PRESETS["digits-tiny"].config.num_parameters <= 40_000


def test_strict_load_of_reference_keys():
    cfg = _tiny()
    sd = _reference_state_dict(cfg)
    model = SpikeDrivenTransformer(cfg)
    model.load_state_dict(dict(sd), strict=True)
    ours = model.state_dict()
    assert set(ours) == {k for k in sd if "talking_heads" not in k}
    for k, v in ours.items():
        assert torch.equal(v, sd[k]), k


def test_strict_load_still_rejects_unknown_keys():
    cfg = _tiny()
    sd = _reference_state_dict(cfg)
    sd["block.0.attn.extra.weight"] = torch.zeros(1)
    with pytest.raises(RuntimeError, match="extra"):
        SpikeDrivenTransformer(cfg).load_state_dict(sd, strict=True)


@pytest.mark.parametrize("wrap", ["none", "model", "state_dict", "file"])
def test_load_reference_checkpoint(tmp_path, wrap):
    cfg = _tiny(mean=(0.5,), std=(0.5,))
    sd = {"module." + k: v for k, v in _reference_state_dict(cfg).items()}
    src = sd if wrap == "none" else {wrap: sd, "epoch": 3}
    if wrap == "file":
        torch.save({"state_dict": sd}, tmp_path / "ref.pth")
        src = tmp_path / "ref.pth"
    model = load_reference_checkpoint(src, img_size=(8, 8), pooling_stat="0001", mean=(0.5,),
                                      std=(0.5,))
    assert model.config == cfg
    assert not model.training
    x = _images(cfg)
    ref = SpikeDrivenTransformer(cfg).eval()
    ref.load_state_dict({k[len("module."):]: v for k, v in sd.items()})
    assert torch.equal(model(x), ref(x))


def test_load_reference_checkpoint_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_reference_checkpoint(tmp_path / "nope.pth")
    with pytest.raises(UserError, match="Spike-Driven Transformer"):
        load_reference_checkpoint({"head.weight": torch.zeros(10, 32)})
    sd = _reference_state_dict(_tiny())
    with pytest.raises(UserError, match="does not match"):
        load_reference_checkpoint(sd, img_size=(8, 8), pooling_stat="0001", mlp_ratio=2,
                                  mean=(0.5,), std=(0.5,))
    with pytest.raises(UserError, match="1-channel input: give its normalization"):
        load_reference_checkpoint(sd, img_size=(8, 8), pooling_stat="0001")


def test_params_formula_matches_math():
    cfg = _tiny(depths=1)
    assert math.isclose(cfg.num_parameters, 28_870)
