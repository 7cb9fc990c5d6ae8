"""Event input and the reference's ``dvs_mode`` in the float model, against the transcription
of the reference code's forward pass in ``_reference.py``; framing event streams."""

import numpy as np
import pytest
import torch
from _reference import reference_forward as _reference_forward
from _reference import reference_state_dict as _reference_state_dict

from sdtforge.errors import UserError
from sdtforge.model import SDTConfig, SpikeDrivenTransformer, load_reference_checkpoint
from sdtforge.model.events import frame_events, read_events


def _events_config(**kw):
    args = dict(in_channels=2, img_size=(16, 16), embed_dims=32, depths=2, T=4,
                pooling_stat="0011", num_classes=5, mean=(0.0, 0.0), std=(1.0, 1.0),
                encoding="events", dvs=True)
    args.update(kw)
    return SDTConfig(**args)


def _frames(config, b=2, seed=0, high=4):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, high, (b, config.T, config.in_channels, *config.img_size),
                         generator=g).float()


# --- the float model against it -------------------------------------------------------------

@pytest.mark.parametrize("dvs", [True, False])
@pytest.mark.parametrize("pooling", ["0011", "0111"])
def test_event_model_equals_the_reference(dvs, pooling):
    cfg = _events_config(dvs=dvs, pooling_stat=pooling)
    sd = _reference_state_dict(cfg, seed=3, gain=4)
    model = load_reference_checkpoint(dict(sd), img_size=cfg.img_size, T=cfg.T,
                                      pooling_stat=pooling, mean=cfg.mean, std=cfg.std,
                                      encoding="events", dvs=dvs)
    assert model.config == cfg
    x = _frames(cfg)
    logits, spikes = model(x, return_spikes=True)
    ref_logits, hook = _reference_forward(sd, x, T=cfg.T, pooling_stat=pooling,
                                          heads=cfg.num_heads, dvs=dvs)
    assert torch.equal(logits, ref_logits)
    heads, dh = cfg.num_heads, cfg.embed_dims // cfg.num_heads
    for j in range(cfg.depths):
        for name in ("k", "v", "out"):
            assert torch.equal(spikes[f"block{j}.attn.{name}"], hook[f"block{j}.attn.{name}"])
        mask = hook[f"block{j}.attn.mask"]  # [T, B, heads, 1, D/heads]
        assert torch.equal(spikes[f"block{j}.attn.mask"],
                           mask.reshape(cfg.T, x.shape[0], heads * dh))
        # Not trivially empty or full, so the comparison says something.
        assert 0 < spikes[f"block{j}.attn.out"].mean() < 1


def test_dvs_pools_change_the_attention():
    """Loading a dvs-mode checkpoint as a plain model gives other spikes (the silent error the
    ``dvs`` field exists to prevent)."""
    cfg = _events_config()
    sd = _reference_state_dict(cfg, seed=3, gain=4)
    x = _frames(cfg)
    with_pools = SpikeDrivenTransformer(cfg).eval()
    without = SpikeDrivenTransformer(_events_config(dvs=False)).eval()
    with_pools.load_state_dict(dict(sd))
    without.load_state_dict(dict(sd))
    _, a = with_pools(x, return_spikes=True)
    _, b = without(x, return_spikes=True)
    assert not torch.equal(a["block0.attn.out"], b["block0.attn.out"])


def test_event_input_is_checked():
    model = SpikeDrivenTransformer(_events_config()).eval()
    with pytest.raises(ValueError, match=r"\[B, 4, 2, 16, 16\]"):
        model(torch.zeros(2, 2, 16, 16))
    with pytest.raises(TypeError, match="counts"):
        model(torch.zeros(1, 4, 2, 16, 16, dtype=torch.bool))
    # integer counts are taken as they are
    x = _frames(_events_config())
    assert torch.equal(model(x.to(torch.int16)), model(x))


@pytest.mark.parametrize("bad, match", [
    (dict(encoding="frames"), "encoding"),
    (dict(mean=(0.5, 0.5)), "not normalized"),
    (dict(dvs=1), "dvs"),
])
def test_event_config_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        _events_config(**bad)


def test_the_integer_flow_takes_dvs_mode(tmp_path):
    """A dvs-mode checkpoint quantizes to ``sdsa_dvs`` layers (``config["dvs"]``), and the
    DVS preset has an integer config; a plain event model keeps plain SDSA."""
    from sdtforge.model import save_checkpoint
    from sdtforge.quantize import ir
    from sdtforge.quantize.quantizer import quantize_checkpoint
    from sdtforge.quantize.synthetic import preset_config

    model = SpikeDrivenTransformer(_events_config()).eval()
    path = save_checkpoint(tmp_path / "dvs.pt", model, preset=None, dataset="cifar10-dvs",
                           seed=0, train_settings={}, metrics={})
    q = quantize_checkpoint(path)
    assert q.config["dvs"] is True
    assert [lay.KIND for lay in q.layers if "sdsa" in lay.KIND] == ["sdsa_dvs"] * 2
    ir.save(q, tmp_path / "dvs.sfm")
    assert ir.load(tmp_path / "dvs.sfm").layer("block1.attn.sdsa").KIND == "sdsa_dvs"
    assert preset_config("cifar10-dvs")["dvs"] is True
    assert "dvs" not in preset_config("dvs-gesture")
    plain = SpikeDrivenTransformer(_events_config(dvs=False)).eval()
    path = save_checkpoint(tmp_path / "events.pt", plain, preset=None, dataset="dvs-gesture",
                           seed=0, train_settings={}, metrics={})
    q = quantize_checkpoint(path)
    assert q.layers[0].KIND == "conv3x3_events" and "dvs" not in q.config
    assert "sdsa_dvs" not in [lay.KIND for lay in q.layers]


# --- framing events ---------------------------------------------------------------------------

def _stream(n=1000, h=16, w=12, seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.integers(0, w, n), "y": rng.integers(0, h, n),
            "t": np.sort(rng.integers(0, 10_000, n)), "p": rng.integers(0, 2, n)}


def _naive_frames(ev, frames, h, w, split_by):
    n = len(ev["t"])
    out = np.zeros((frames, 2, h, w), np.int32)
    if split_by == "number":
        per = n // frames
        which = [min(i // per, frames - 1) if per else frames - 1 for i in range(n)]
    else:
        t0, span = ev["t"][0], (ev["t"][-1] - ev["t"][0]) // frames
        which = [min((t - t0) // span, frames - 1) for t in ev["t"]]
    for i in range(n):
        out[which[i], int(ev["p"][i] > 0), ev["y"][i], ev["x"][i]] += 1
    return out


@pytest.mark.parametrize("split_by", ["number", "time"])
@pytest.mark.parametrize("n", [1000, 7, 3])
def test_frame_events_counts_each_event_once(split_by, n):
    ev = _stream(n)
    frames = frame_events(ev, 5, (16, 12), split_by=split_by)
    assert frames.shape == (5, 2, 16, 12) and frames.dtype == np.int32
    assert frames.sum() == n
    assert np.array_equal(frames, _naive_frames(ev, 5, 16, 12, split_by))


def test_frame_events_sorts_by_time_and_reads_structured_arrays():
    ev = _stream(200)
    order = np.random.default_rng(1).permutation(200)
    shuffled = np.zeros(200, dtype=[("x", "i2"), ("y", "i2"), ("t", "i8"), ("p", "i1")])
    for k in "xytp":
        shuffled[k] = ev[k][order]
    shuffled["p"] = np.where(shuffled["p"] > 0, 1, -1)  # ±1 polarity, as some sensors give
    assert np.array_equal(frame_events(shuffled, 4, (16, 12)), frame_events(ev, 4, (16, 12)))


def test_frame_events_refuses_bad_input(tmp_path):
    with pytest.raises(UserError, match="outside the 8×12 sensor"):
        frame_events(_stream(), 4, (8, 12))
    with pytest.raises(UserError, match="fields x, y, t and p"):
        frame_events({"x": [1]}, 4, (8, 8))
    with pytest.raises(UserError, match="split"):
        frame_events(_stream(), 4, (16, 12), split_by="count")
    with pytest.raises(UserError, match="integers"):
        frame_events({k: np.zeros(3) for k in "xytp"}, 2, (4, 4))
    np.savez(tmp_path / "ev.npz", x=np.zeros(3, int), y=np.zeros(3, int))
    with pytest.raises(UserError, match=r"lacks the arrays \['t', 'p'\]"):
        read_events(tmp_path / "ev.npz")
    (tmp_path / "bad.npz").write_text("no")
    with pytest.raises(UserError, match="not an .npz"):
        read_events(tmp_path / "bad.npz")
    ev = _stream()
    np.savez(tmp_path / "good.npz", **ev)
    assert np.array_equal(frame_events(read_events(tmp_path / "good.npz"), 4, (16, 12)),
                          frame_events(ev, 4, (16, 12)))
