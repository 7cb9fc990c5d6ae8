"""Checkpoints and the train/eval commands, including the shipped digits-tiny checkpoint."""

import json

import pytest
import torch

from sdtforge.cli import main
from sdtforge.errors import UserError
from sdtforge.model import SHIPPED_CHECKPOINTS, load_checkpoint, load_dataset, spike_names
from sdtforge.quantize import ir
from sdtforge.quantize.synthetic import random_model

SHIPPED = SHIPPED_CHECKPOINTS["digits-tiny"]


@pytest.mark.parametrize("preset, accuracy", [("digits-tiny", 0.95), ("digits-small", 0.98)])
def test_shipped_checkpoint_loads(preset, accuracy):
    from sdtforge.model import PRESETS
    path = SHIPPED_CHECKPOINTS[preset]
    model, ckpt = load_checkpoint(path)
    assert ckpt["format"] == "sdtforge-checkpoint/1"
    assert ckpt["preset"] == preset and ckpt["dataset"] == "digits" and ckpt["seed"] == 0
    assert set(ckpt["metrics"]) == {"test_accuracy", "train_accuracy", "epochs", "seconds"}
    assert ckpt["metrics"]["test_accuracy"] >= accuracy
    assert model.config == PRESETS[preset].config
    assert not model.training
    # tensors-only: loadable without unpickling arbitrary objects
    torch.load(path, weights_only=True)


def test_shipped_digits_small_evaluates_to_its_recorded_accuracy(capsys):
    path = SHIPPED_CHECKPOINTS["digits-small"]
    assert main(["eval", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    _, ckpt = load_checkpoint(path)
    assert result["test_accuracy"] == pytest.approx(ckpt["metrics"]["test_accuracy"])


def test_eval_shipped_checkpoint_json(capsys):
    assert main(["eval", str(SHIPPED), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["test_accuracy"] >= 0.95
    assert result["test_images"] == 360
    model, _ = load_checkpoint(SHIPPED)
    assert list(result["firing_rates"]) == spike_names(model.config)
    assert all(0.0 <= r <= 1.0 for r in result["firing_rates"].values())


def test_eval_limit(capsys, tmp_path):
    """``--limit N``: the first N test images, of a checkpoint and of its integer model."""
    from sdtforge.quantize.quantizer import quantize_checkpoint
    from sdtforge.sim import golden

    assert main(["eval", str(SHIPPED), "--limit", "37", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_images"] == 37
    path = ir.save(quantize_checkpoint(SHIPPED), tmp_path / "m.sfm")
    assert main(["eval", str(path), "--limit", "25", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    x, y = load_dataset("digits", "test")
    classes = golden.run(ir.load(path), x[:25]).classes
    assert result["images"] == 25
    assert result["accuracy"] == pytest.approx(float((classes == y[:25]).mean()))


def test_eval_synthetic_model_has_no_accuracy(capsys, tmp_path):
    path = tmp_path / "s.sfm"
    assert main(["synth", "--preset", "digits-tiny", "--firing-rate", "0.2", "--out", str(path),
                 "--json"]) == 0
    capsys.readouterr()
    assert main(["eval", str(path), "--limit", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["accuracy"] is None and result["images"] == 3
    assert result["dataset"].startswith("random inputs")
    assert main(["eval", str(path), "--limit", "2"]) == 0
    assert "none: random weights" in capsys.readouterr().out


def test_eval_table(capsys):
    assert main(["eval", str(SHIPPED)]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "block0.attn.mask" in out


def test_not_a_checkpoint(tmp_path):
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="not an sdtforge checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(UserError, match="cannot be read"):
        load_checkpoint(tmp_path / "junk.pt")
    # An integer model where a checkpoint belongs: said so, not torch's archive error.
    ir_path = tmp_path / "model.sfm"
    ir.save(random_model(seed=1), ir_path)
    with pytest.raises(UserError, match=r"is an integer model \(\.sfm\), not a float checkpoint"):
        load_checkpoint(ir_path)
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_sfm_goes_to_the_golden_model(tmp_path, capsys):
    # A .sfm path is the integer model's: eval hands it to the golden model, whose loader
    # names the missing file.
    assert main(["eval", str(tmp_path / "m.sfm")]) == 2
    assert "m.sfm" in capsys.readouterr().err


def test_train_one_epoch_writes_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--preset", "digits-tiny", "--epochs", "1", "--out", str(out),
                 "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["epochs"] == 1 and 0.0 <= metrics["test_accuracy"] <= 1.0
    model, ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["seed"] == 0 and ckpt["train_settings"]["epochs"] == 1
    assert ckpt["metrics"]["test_accuracy"] == metrics["test_accuracy"]
