"""``sdtforge.sim.latency``: the cycle model's mean over test images, and its time at a clock."""

import numpy as np
import pytest

from sdtforge.errors import UserError
from sdtforge.model import SHIPPED_CHECKPOINTS, load_dataset
from sdtforge.sim import cycles, golden, latency


@pytest.fixture(scope="module")
def digits_tiny():
    from sdtforge.quantize.quantizer import quantize_checkpoint
    return quantize_checkpoint(SHIPPED_CHECKPOINTS["digits-tiny"])


@pytest.mark.parametrize(("lanes", "width"), [(1, 16), (8, 16)])
def test_cycles_per_image_is_the_mean_of_predict(digits_tiny, lanes, width):
    images = 4
    x = load_dataset("digits", "test")[0][:images]
    res = golden.run(digits_tiny, x, spikes=True)
    expected = np.mean([cycles.predict(digits_tiny, res.spikes, lanes, width, image=i)["total"]
                        for i in range(images)])
    got = latency.cycles_per_image(digits_tiny, lanes, width, images=images)
    assert got == expected
    assert isinstance(got, float)
    assert [p["total"] for p in latency.predictions(digits_tiny, res, lanes, width)] == \
        [cycles.predict(digits_tiny, res.spikes, lanes, width, image=i)["total"]
         for i in range(images)]


def test_sample_images_are_the_first_test_images(digits_tiny):
    x = latency.sample_images(digits_tiny)
    assert x.shape == (latency.DEFAULT_IMAGES, 1, 8, 8) and x.dtype == np.uint8
    assert np.array_equal(x, load_dataset("digits", "test")[0][:latency.DEFAULT_IMAGES])


def test_latency_arithmetic():
    assert latency.latency(20_000, 20.0) == {"latency_ms": 1.0, "images_per_s": 1000.0}
    assert latency.latency(641_367.2, 19.875) == {"latency_ms": 32.27, "images_per_s": 31.0}
    fig = latency.latency(85_679.9, 50.0)
    assert fig["latency_ms"] == pytest.approx(85_679.9 / 50.0 / 1e3, abs=5e-5)
    assert fig["images_per_s"] == pytest.approx(50e6 / 85_679.9, abs=0.05)


def test_dataset_without_its_data_is_a_user_error():
    from sdtforge.quantize.synthetic import random_model

    model = random_model(seed=1)
    assert latency.dataset_of(model) == "digits"
    model.provenance["dataset"] = "cifar10"
    with pytest.raises(UserError, match="cifar10 needs --data-dir"):
        latency.cycles_per_image(model, 8, 16)


def test_built_configuration_sets_descriptor_and_writeback(digits_tiny):
    """A configuration gives the cycle model its descriptor size and write-back cycles: the
    derived one predicts what the default does, a lane-serial one more; one at other lanes is
    refused."""
    import dataclasses

    from sdtforge.hdl.compile import compile_model

    x = load_dataset("digits", "test")[0][:2]
    res = golden.run(digits_tiny, x, spikes=True)
    cfg = compile_model(digits_tiny, lanes=8, width=16).config
    plain = latency.mean_cycles(digits_tiny, res, 8, 16)
    assert latency.mean_cycles(digits_tiny, res, 8, 16, config=cfg) == plain
    serial = dataclasses.replace(cfg, writeback_cycles=8)
    assert latency.mean_cycles(digits_tiny, res, 8, 16, config=serial) > plain
    with pytest.raises(ValueError, match="P = 8, W = 16, not 4, 16"):
        cycles.predict(digits_tiny, res.spikes, 4, 16, config=cfg)
