"""``bench/energy.py``: a row from a small model holds the figures its table prints, and they
agree with ``sim/energy.py``."""

import pytest
from _bench import load_bench

from sdtforge.quantize import synthetic
from sdtforge.sim import energy, golden

BENCH = load_bench("energy")


def test_a_row_matches_the_energy_module():
    model = synthetic.random_model(seed=2, theta_max=8)
    images = synthetic.synthetic_images(model.config, 3, seed=1)
    row = BENCH._row("tiny", model, images)
    per_image = golden.run(model, images).per_image()
    assert row["images"] == 3
    assert row["paper_uj"] == pytest.approx(energy.energy(per_image)["total_uj"])
    mem = energy.memory_energy(model, per_image)
    assert row["with_memory_uj"] == pytest.approx(mem["total_uj"])
    assert row["with_memory_uj"] > row["paper_uj"]
    sdsa = energy.sdsa_ratio_from_counts(model, per_image)["block0.attn.sdsa"]
    assert row["module_ratio_block0"] == pytest.approx(sdsa["module_ratio"])
    assert row["operator_ratio_block0"] == pytest.approx(sdsa["ratio"])
