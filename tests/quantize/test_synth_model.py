"""``sdtforge synth``: random integer models of a preset's shape at a firing rate (sizing)."""

import json

import numpy as np
import pytest

from sdtforge.cli import main
from sdtforge.errors import UserError
from sdtforge.quantize import ir
from sdtforge.quantize.synthetic import preset_config, synth_model, synthetic_images
from sdtforge.sim import golden, latency


def _rate(model, x):
    totals = golden.run(model, x).totals()
    return totals["spikes"] / totals["neuron_updates"]


@pytest.mark.parametrize("target", [0.05, 0.2])
def test_rate_is_near_the_target(target):
    model = synth_model("digits-tiny", target, seed=3, images=2)
    info = model.provenance["synthetic"]
    x = synthetic_images(model.config, 2, seed=3)
    # The recorded rate is the model's own on its random inputs, and near the target.
    assert info["firing_rate"] == pytest.approx(_rate(model, x))
    assert abs(info["firing_rate"] - target) < 0.25 * target
    assert (info["preset"], info["seed"], info["images"]) == ("digits-tiny", 3, 2)
    assert model.provenance["dataset"] == "digits"
    assert {**model.config, **preset_config("digits-tiny")} == model.config


def test_cli_writes_a_deterministic_model_that_builds_without_data(tmp_path, capsys):
    a, b = tmp_path / "a.sfm", tmp_path / "b.sfm"
    summaries = []
    for path in (a, b):
        assert main(["synth", "--preset", "digits-tiny", "--firing-rate", "0.15", "--seed", "7",
                     "--out", str(path), "--json"]) == 0
        summaries.append(json.loads(capsys.readouterr().out))
    summary = summaries[0]
    assert summaries[1] == {**summary, "out": str(b)}
    # This seed's rate jumps from 0.197 to 0.112 between neighbouring threshold scales.
    assert summary["firing_rate"] == pytest.approx(0.1971, abs=1e-4)
    assert summary["note"].startswith("the rate jumps past 0.15")
    assert a.read_bytes() == b.read_bytes()
    assert summary["preset"] == "digits-tiny" and summary["firing_rate_target"] == 0.15
    model = ir.load(a)
    assert model.provenance["synthetic"]["seed"] == 7
    # The latency's inputs are the random ones the rate was tuned on, not the dataset's.
    x = latency.sample_images(model, 3)
    assert np.array_equal(x, synthetic_images(model.config, 3, seed=7))
    assert main(["build", str(a), "--board", "ulx3s-85f", "--check", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["fits"] and figures["latency_ms"] > 0


def test_a_cifar_shape_needs_no_dataset():
    """A synthetic CIFAR-10 model has a latency without --data-dir (a trained one has not)."""
    from sdtforge.quantize.synthetic import random_model

    model = random_model(preset_config("cifar10-2-256") | {"embed_dims": 32, "num_heads": 4},
                         seed=1)
    model.provenance.update(dataset="cifar10", synthetic={"seed": 5})
    assert latency.sample_images(model, 2).shape == (2, 3, 32, 32)
    del model.provenance["synthetic"]
    with pytest.raises(UserError, match="cifar10 needs --data-dir"):
        latency.sample_images(model, 2)
