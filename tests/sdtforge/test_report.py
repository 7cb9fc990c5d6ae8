import json

import pytest

from sdtforge.cli import main


@pytest.fixture(scope="module")
def shipped_sfm(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "digits-tiny.sfm"
    from sdtforge.model import SHIPPED_CHECKPOINTS
    assert main(["quantize", str(SHIPPED_CHECKPOINTS["digits-tiny"]), "--out", str(path)]) == 0
    return path


def test_report_sections_plots_and_determinism(shipped_sfm, tmp_path):
    build = tmp_path / "build.json"
    # The shape `sdtforge build` writes (iCE40: logic cells as "lc").
    build.write_text(json.dumps({
        "board": "icebreaker", "fmax_mhz": 31.5, "lc": 4000, "lc_available": 5280, "ff": 2000,
        "bram": 20, "bram_available": 30, "spram": 4, "spram_available": 4, "dsp": 0,
        "dsp_available": 8, "lanes": 1,
    }))
    build8 = tmp_path / "build8.json"
    build8.write_text(json.dumps({"board": "ulx3s-85f", "fmax_mhz": 53.5, "lut": 9000, "ff": 5000,
                                  "lanes": 8, "width": 16, "clock_mhz": 46.875}))
    outs = []
    for run in ("a", "b"):
        out = tmp_path / run
        assert main(["report", str(shipped_sfm), "--out", str(out), "--images", "8",
                     "--build", str(build), "--build", str(build8)]) == 0
        outs.append(out)
    md = (outs[0] / "report.md").read_text()
    for section in ("## Accuracy", "## Firing rates", "## Cycles", "## Energy per inference",
                    "## Boards", "| icebreaker | 1 | 4000 / 5280 | 2000 |"):
        assert section in md
    data = json.loads((outs[0] / "report.json").read_text())
    assert data["accuracy"]["integer"] > 0.95
    assert set(data["firing_rates"]) >= {"sps.lif0", "head.lif"}
    assert data["cycles"]["mean_per_image"] > data["cycles"]["work_bound"] > 0
    for name in ("accuracy", "firing_rates", "cycles", "energy", "resources"):
        png = (outs[0] / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and f"({name}.png)" in md
        assert png == (outs[1] / f"{name}.png").read_bytes()
    assert md == (outs[1] / "report.md").read_text()
    # per-layer latency on the board built at the report's 8 lanes (not the 1-lane one)
    assert "| layer | cycles | µs on ulx3s-85f (46.875 MHz) |" in md
    cycles = data["cycles"]["per_layer"]["sps.conv1"]
    assert f"| sps.conv1 | {cycles:.0f} | {cycles / 46.875:.1f} |" in md
    # energy: the paper's method, with memory, and the SDSA module ratio
    assert "With memory" in md and "| weight memory |" in md
    assert "for the module with the Q/K/V generation" in md
    assert data["energy_with_memory"]["total_uj"] > data["energy"]["total_uj"]


def test_report_missing_inputs_are_clear(shipped_sfm, tmp_path, capsys):
    assert main(["report", str(shipped_sfm), "--out", str(tmp_path),
                 "--cosim", str(tmp_path / "nope.json")]) == 2
    assert "nope.json does not exist" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.sfm"), "--out", str(tmp_path)]) == 2


def test_report_of_a_synthetic_model_claims_no_accuracy(tmp_path):
    """A `sdtforge synth` model's report: figures over its random inputs, no accuracy (no
    section, no plot, no dataset read)."""
    from sdtforge.quantize import ir
    from sdtforge.quantize.synthetic import synthetic_images
    from sdtforge.sim import golden, latency

    sfm = tmp_path / "s.sfm"
    assert main(["synth", "--preset", "digits-tiny", "--firing-rate", "0.2", "--seed", "4",
                 "--out", str(sfm), "--json"]) == 0
    out = tmp_path / "r"
    assert main(["report", str(sfm), "--out", str(out), "--images", "3"]) == 0
    md = (out / "report.md").read_text()
    data = json.loads((out / "report.json").read_text())
    assert "synthetic" in md and "## Accuracy" not in md and "## Cycles" in md
    assert not (out / "accuracy.png").exists()
    assert data["synthetic"] is True and data["accuracy"]["integer"] is None
    model = ir.load(sfm)
    res = golden.run(model, synthetic_images(model.config, 3, seed=4), spikes=True)
    assert data["cycles"]["mean_per_image"] == latency.mean_cycles(model, res, 8, 16)
