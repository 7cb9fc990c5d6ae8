"""``sdtforge convert``: reference checkpoints in, the options, the refusals, DVS models."""

import argparse
import json
import pickle

import numpy as np
import pytest
import torch
from _reference import reference_forward, reference_state_dict

from sdtforge.cli import main
from sdtforge.model import SDTConfig, load_checkpoint
from sdtforge.model.presets import get_preset
from sdtforge.model.sdt import SpikeDrivenTransformer


def test_convert_reference_checkpoint(tmp_path, capsys):
    torch.manual_seed(0)
    model = SpikeDrivenTransformer(get_preset("digits-tiny").config).eval()
    # As the reference training script saves it: DataParallel prefix, a "model" wrapper and the
    # unused talking-heads weight.
    sd = {f"module.{k}": v for k, v in model.state_dict().items()}
    sd["module.block.0.attn.talking_heads.weight"] = torch.zeros(8, 8, 1)
    ref = tmp_path / "ref.pth"
    torch.save({"model": sd, "epoch": 3}, ref)
    out = tmp_path / "ckpt.pt"
    assert main(["convert", str(ref), "--preset", "digits-tiny", "--out", str(out)]) == 0
    assert "test accuracy" in capsys.readouterr().out
    loaded, ckpt = load_checkpoint(out)
    assert ckpt["preset"] == "digits-tiny" and ckpt["dataset"] == "digits"
    assert 0.0 <= ckpt["metrics"]["test_accuracy"] <= 1.0
    x = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    assert torch.equal(loaded(x), model(x))


def test_convert_errors(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "nope.pth"), "--preset", "digits-tiny",
                 "--out", str(tmp_path / "o.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.pth"
    torch.save({"model": {"head.weight": torch.zeros(10, 32)}}, bad)
    assert main(["convert", str(bad), "--preset", "digits-tiny", "--out",
                 str(tmp_path / "o.pt"), "--no-eval"]) == 2


# --- options, mismatches, DVS ----------------------------------------------------------------


def _save_reference(path, config, seed=0, gain=None, extra=None):
    sd = reference_state_dict(config, seed=seed, gain=gain)
    torch.save({"model": {f"module.{k}": v for k, v in sd.items()}, **(extra or {})}, path)
    return sd


def _cifar(**kw):
    args = dict(in_channels=3, img_size=(32, 32), embed_dims=32, depths=1, T=2,
                pooling_stat="0011", num_classes=100, mean=(0.5,) * 3, std=(0.5,) * 3)
    args.update(kw)
    return SDTConfig(**args)


def _convert(capsys, *argv):
    rc = main(["convert", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("preset", ["cifar10-dvs", "dvs-gesture"])
def test_a_dvs_reference_model_converts_to_the_same_logits(tmp_path, capsys, preset):
    """The acceptance check: a reference DVS model of the paper's shape (random weights; two
    polarity channels, event counts in as they are, dvs_mode where the reference uses it) →
    convert → the same float logits as the reference's forward pass."""
    cfg = get_preset(preset).config
    ref = tmp_path / "ref.pth"
    sd = _save_reference(ref, cfg, seed=5, gain=4)
    out = tmp_path / "dvs.pt"
    rc, _, err = _convert(capsys, ref, "--preset", preset, "--out", out, "--no-eval")
    assert rc == 0, err
    model, ckpt = load_checkpoint(out)
    assert model.config == cfg and ckpt["dataset"] == get_preset(preset).dataset
    x = torch.randint(0, 3, (1, cfg.T, 2, *cfg.img_size)).float()
    expected, _ = reference_forward(sd, x, T=cfg.T, pooling_stat=cfg.pooling_stat, heads=8,
                                    dvs=cfg.dvs)
    with torch.no_grad():
        assert torch.equal(model(x), expected)
    # without --no-eval the missing data is a one-line refusal, and nothing is written
    rc, _, err = _convert(capsys, ref, "--preset", preset, "--out", tmp_path / "e.pt")
    assert rc == 2 and not (tmp_path / "e.pt").exists() and err.count("\n") == 1
    assert f"{ckpt['dataset']} needs --data-dir" in err


def test_an_event_model_is_scored_on_dvs_gesture_files(tmp_path, capsys):
    from sdtforge.model import load_dataset
    from sdtforge.model.training import evaluate

    cfg = SDTConfig(in_channels=2, img_size=(128, 128), embed_dims=32, depths=1, T=2,
                    pooling_stat="1111", num_classes=11, mean=(0.0, 0.0), std=(1.0, 1.0),
                    encoding="events")
    ref = tmp_path / "g.pth"
    _save_reference(ref, cfg, seed=1, gain=4)
    rng = np.random.default_rng(0)
    for label in range(3):
        folder = tmp_path / "events_np" / "test" / str(label)
        folder.mkdir(parents=True)
        n = 3000
        np.savez(folder / "a.npz", x=rng.integers(0, 128, n), y=rng.integers(0, 128, n),
                 t=np.arange(n), p=rng.integers(0, 2, n))
    out = tmp_path / "g.pt"
    rc, text, err = _convert(capsys, ref, "--img-size", "128", "--time-steps", "2",
                             "--pooling", "1111", "--dataset", "dvs-gesture", "--events",
                             "--data-dir", tmp_path, "--out", out, "--json")
    assert rc == 0, err
    result = json.loads(text)
    model, _ = load_checkpoint(out)
    x, y = load_dataset("dvs-gesture", "test", tmp_path, time_steps=2)
    assert result["test_accuracy"] == evaluate(model, x, y)
    rc = main(["eval", str(out), "--data-dir", str(tmp_path), "--json"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["test_accuracy"] == result["test_accuracy"]


def test_a_small_dvs_model_without_preset(tmp_path, capsys):
    cfg = SDTConfig(in_channels=2, img_size=(64, 64), embed_dims=32, depths=2, T=4,
                    pooling_stat="1111", num_classes=10, mean=(0.0, 0.0), std=(1.0, 1.0),
                    encoding="events", dvs=True)
    ref = tmp_path / "ref.pth"
    sd = _save_reference(ref, cfg, seed=5, gain=4)
    common = ["--img-size", "64", "--time-steps", "4", "--pooling", "1111", "--dataset",
              "cifar10-dvs", "--events", "--no-eval"]
    # CIFAR10-DVS without a preset means dvs mode, as the reference trains it
    rc, _, err = _convert(capsys, ref, *common, "--out", tmp_path / "dvs.pt")
    assert rc == 0, err
    model, _ = load_checkpoint(tmp_path / "dvs.pt")
    assert model.config == cfg
    x = torch.randint(0, 4, (3, 4, 2, 64, 64)).float()
    expected, _ = reference_forward(sd, x, T=4, pooling_stat="1111", heads=8, dvs=True)
    assert torch.equal(model(x), expected)
    # the same weights read as a plain (non-dvs) model compute something else
    rc, _, err = _convert(capsys, ref, *common, "--no-dvs", "--out", tmp_path / "plain.pt")
    assert rc == 0, err
    plain, _ = load_checkpoint(tmp_path / "plain.pt")
    assert not torch.equal(plain(x), expected)


def test_a_cifar100_checkpoint_gets_cifar100_data_and_statistics(tmp_path, capsys):
    ref = tmp_path / "c100.pth"
    _save_reference(ref, _cifar())
    data = tmp_path / "cifar-100-python"
    data.mkdir()
    rng = np.random.default_rng(0)
    for name in ("train", "test"):
        with open(data / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (5, 3072), dtype=np.uint8),
                         b"fine_labels": [7, 70, 99, 0, 1]}, f)
    out = tmp_path / "c100.pt"
    rc, text, err = _convert(capsys, ref, "--preset", "cifar10-2-256", "--out", out)
    assert rc == 2 and not out.exists()
    assert err.count("\n") == 1
    assert ("the checkpoint is D=32, 1 block(s), MLP ×4, 3-channel input, 100 classes; preset "
            "cifar10-2-256 has embed_dims=256, depths=2, num_classes=10") in err
    rc, text, err = _convert(capsys, ref, "--img-size", "32", "--time-steps", "2", "--pooling",
                             "0011", "--dataset", "cifar100", "--data-dir", tmp_path,
                             "--out", out)
    assert rc == 0, err
    assert "cifar100" in text and "test accuracy" in text
    model, ckpt = load_checkpoint(out)
    assert ckpt["dataset"] == "cifar100" and ckpt["preset"] is None
    assert model.config.mean == (0.5071, 0.4867, 0.4408)
    assert model.config.num_classes == 100 and model.config.T == 2


def _digits_ref(tmp_path):
    ref = tmp_path / "d.pth"
    torch.manual_seed(0)
    model = SpikeDrivenTransformer(get_preset("digits-tiny").config).eval()
    torch.save({"model": model.state_dict()}, ref)
    return ref


@pytest.mark.parametrize("argv, message", [
    (["--preset", "cifar10-2-256"], "the checkpoint is D=32, 1 block(s), MLP ×4, 1-channel "
     "input, 10 classes; preset cifar10-2-256 has in_channels=3, embed_dims=256, depths=2: "
     "use --preset digits-tiny"),
    (["--preset", "digits-tiny", "--num-classes", "100"], "--num-classes 100 does not match "
     "the checkpoint (D=32"),
    (["--preset", "digits-tiny", "--in-channels", "3"], "--in-channels 3 does not match"),
    (["--preset", "digits-tiny", "--dataset", "cifar10"], "dataset cifar10 has 3 input "
     "channels, the checkpoint 1"),
    (["--img-size", "8"], "does not say its --time-steps, --pooling, --dataset: give them"),
    (["--preset", "digits-tiny", "--img-size", "16", "--no-eval"], "dataset digits has 8×8 "
     "inputs, the model takes 16×16"),
    (["--preset", "digits-tiny", "--events", "--no-eval"], "dataset digits is an image "
     "dataset; the model takes event frames"),
    (["--preset", "digits-tiny", "--mean", "0.5"], "give --mean and --std together"),
    (["--preset", "digits-tiny", "--mean", "0.5,0.5", "--std", "1,1", "--no-eval"],
     "mean must have one value per input channel"),
])
def test_convert_refuses_each_mismatch_with_one_line(tmp_path, capsys, argv, message):
    ref = _digits_ref(tmp_path)
    out = tmp_path / "o.pt"
    rc, _, err = _convert(capsys, ref, "--out", out, *argv)
    assert rc == 2 and not out.exists()
    assert message in err
    assert err.count("\n") == 1, err


@pytest.mark.parametrize("argv, message", [
    (["--img-size", "8x"], "is not a size"),
    (["--pooling", "012"], "is not four 0/1 characters"),
    (["--mean", "a,b"], "is not a number"),
    (["--dataset", "mnist"], "invalid choice"),
])
def test_convert_bad_option_values_are_usage_errors(tmp_path, capsys, argv, message):
    rc, _, err = _convert(capsys, _digits_ref(tmp_path), "--out", tmp_path / "o.pt", *argv)
    assert rc == 2 and message in err


def test_the_trusted_hint_is_one_plain_line(tmp_path, capsys):
    ref = tmp_path / "ref.pth"
    _save_reference(ref, _cifar(num_classes=10), extra={"args": argparse.Namespace(lr=1)})
    out = tmp_path / "o.pt"
    rc, _, err = _convert(capsys, ref, "--preset", "cifar10-2-256", "--img-size", "32",
                          "--out", out, "--no-eval")
    assert rc == 2 and "\x1b" not in err and err.count("\n") == 1
    assert "it holds a pickled argparse.Namespace object beside the tensors" in err
    assert "sdtforge convert --trusted" in err
