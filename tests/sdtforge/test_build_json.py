"""``sdtforge build --json``: the build figures plus lanes, clock and the cycle model's latency.

The fast tests stand in for place and route (``build_bitstream`` returns the figures of fixed
tool reports); the real iCEBreaker build is ``slow``.
"""

import json

import pytest

from sdtforge.boards.targets import BOARDS, plan_board
from sdtforge.cli import main
from sdtforge.model import SHIPPED_CHECKPOINTS
from sdtforge.quantize import ir
from sdtforge.sim import latency

#: Every field ``sdtforge build --json`` prints for an iCE40 board.
ICE40_KEYS = ("lanes", "width", "clock_mhz", "f_sync_mhz", "fmax_mhz", "timing_met", "lut4", "lc",
              "ff", "bram", "spram", "dsp", "cycles_per_image", "latency_ms", "images_per_s",
              "latency_images", "board", "seed", "model_id")


@pytest.fixture(scope="module")
def digits_tiny(tmp_path_factory):
    from sdtforge.quantize.quantizer import quantize_checkpoint

    path = tmp_path_factory.mktemp("model") / "digits-tiny.sfm"
    ir.save(quantize_checkpoint(SHIPPED_CHECKPOINTS["digits-tiny"]), path)
    return path


def _check_latency(figures):
    """``latency_ms`` and ``images_per_s`` are ``cycles_per_image`` at ``clock_mhz``."""
    cycles, clock = figures["cycles_per_image"], figures["clock_mhz"]
    assert figures["latency_ms"] == pytest.approx(cycles / clock / 1000, rel=1e-4, abs=1e-4)
    assert figures["images_per_s"] == pytest.approx(clock * 1e6 / cycles, rel=1e-3, abs=0.1)


def test_json_fields_and_report(digits_tiny, fake_pnr, tmp_path, capsys):
    out = tmp_path / "build"
    assert main(["build", str(digits_tiny), "--board", "icebreaker", "--seed", "3",
                 "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert fake_pnr == [3]
    assert printed == json.loads((out / "report.json").read_text())
    assert set(ICE40_KEYS) <= set(printed)
    assert printed["clock_mhz"] == printed["f_sync_mhz"] == 24.0
    assert (printed["lanes"], printed["width"]) == (8, 16)
    assert (printed["lc"], printed["lut4"], printed["ff"], printed["dsp"]) == (5259, 3905, 1898, 0)
    assert printed["fmax_mhz"] == 25.59 and printed["timing_met"] is True
    model = ir.load(digits_tiny)
    # At the board's configuration (eight lanes, one write-back lane: 8 cycles a row's results).
    config = plan_board(model, BOARDS["icebreaker"]).config
    assert config.writeback_cycles == 8
    cycles = latency.cycles_per_image(model, 8, 16, images=latency.DEFAULT_IMAGES, config=config)
    assert printed["cycles_per_image"] == round(cycles, 1)
    assert printed["latency_images"] == latency.DEFAULT_IMAGES == 10
    _check_latency(printed)
    assert "latency_note" not in printed


def test_table_shows_latency(digits_tiny, fake_pnr, tmp_path, capsys):
    assert main(["build", str(digits_tiny), "--board", "icebreaker",
                 "--out", str(tmp_path / "b")]) == 0
    text = capsys.readouterr().out
    figures = json.loads((tmp_path / "b" / "report.json").read_text())
    assert f"latency: {figures['latency_ms']} ms per image, {figures['images_per_s']} images/s" \
        in text
    assert "clock_mhz" in text and "24.0" in text


def test_dataset_not_at_hand(fake_pnr, tmp_path, capsys):
    """A CIFAR-10 model without --data-dir builds without a latency and says why; a --data-dir
    without the dataset is refused before place and route."""
    from sdtforge.quantize.synthetic import random_model

    model = random_model(seed=2)
    model.provenance["dataset"] = "cifar10"
    path = ir.save(model, tmp_path / "c.sfm")
    assert main(["build", str(path), "--board", "ulx3s-85f", "--out", str(tmp_path / "b"),
                 "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["cycles_per_image"] is figures["latency_ms"] is figures["images_per_s"] is None
    assert figures["latency_note"].startswith("no latency: cifar10 needs --data-dir")
    assert fake_pnr == [1]

    empty = tmp_path / "data"
    empty.mkdir()
    assert main(["build", str(path), "--board", "ulx3s-85f", "--out", str(tmp_path / "c"),
                 "--data-dir", str(empty)]) == 2
    err = capsys.readouterr().err.strip()
    assert "CIFAR-10 batch" in err and "\n" not in err
    assert fake_pnr == [1]   # refused before the build


@pytest.mark.slow
def test_icebreaker_build_json(digits_tiny, tmp_path, capsys):
    """The acceptance build: the shipped digits-tiny on the iCEBreaker through the CLI, a
    bitstream within the board (the default eight lanes, no DSP, timing met at the default
    clock), every field of the report, consistent."""
    out = tmp_path / "build"
    assert main(["build", str(digits_tiny), "--board", "icebreaker", "--out", str(out),
                 "--json"]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    # The build says its stages on stderr as the tools' logs show them (minutes each here).
    stages = [line.split(" (")[0] for line in captured.err.splitlines()]
    assert "build: placing" in stages and "build: routing" in stages
    assert stages.index("build: placing") < stages.index("build: routing")
    assert printed == json.loads((out / "report.json").read_text())
    assert set(ICE40_KEYS) <= set(printed)
    assert all(printed[k] is not None for k in ICE40_KEYS)
    assert printed["clock_mhz"] == printed["f_sync_mhz"]
    assert printed["timing_met"] == (printed["fmax_mhz"] >= printed["clock_mhz"])
    assert printed["lanes"] == BOARDS["icebreaker"].default_lanes == 8
    assert (out / "sdtforge.bin").stat().st_size > 0
    # Eight lanes of 8-bit weights: 64-bit rows, digits-tiny's 14 068 of them in four SPRAMs
    # side by side.
    assert printed["dsp"] == 0 and printed["spram"] == 4
    assert printed["lc"] <= 5280 and printed["bram"] <= 30
    assert printed["timing_met"]        # at the default clock (the two checks above)
    model = ir.load(digits_tiny)
    plan = plan_board(model, BOARDS["icebreaker"])
    # The fit check counts the blocks the tools use (the LIF's membrane rows included).
    assert printed["bram"] == plan.brams
    cycles = latency.cycles_per_image(model, printed["lanes"], printed["width"],
                                      config=plan.config)
    assert printed["cycles_per_image"] == round(cycles, 1)
    _check_latency(printed)


def test_check_is_the_fit_check_and_latency_only(digits_tiny, fake_pnr, tmp_path, capsys):
    """``build --check``: the plan's block counts and logic estimate and the cycle model's
    latency, as a real build would report them; no place and route, nothing written."""

    out = tmp_path / "b"
    assert main(["build", str(digits_tiny), "--board", "icebreaker", "--out", str(out),
                 "--check", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert fake_pnr == [] and not out.exists()
    plan = plan_board(ir.load(digits_tiny), BOARDS["icebreaker"])
    assert printed["fits"] is True and printed["board"] == "icebreaker"
    assert (printed["lanes"], printed["width"], printed["clock_mhz"]) == (8, 16, 24.0)
    assert printed["events"] == plan.config.events == 1    # 8-bit weights fill the SPRAM
    assert (printed["bram"], printed["spram"], printed["logic_estimate"]) == \
        (plan.brams, plan.sprams, plan.luts_estimate)
    assert printed["memories"]["weights"] == {"rows": plan.usage["weights"][0],
                                              "bits": plan.usage["weights"][1], "blocks": 0}
    cycles = latency.cycles_per_image(ir.load(digits_tiny), 8, 16, config=plan.config)
    assert printed["cycles_per_image"] == round(cycles, 1)
    _check_latency(printed)

    assert main(["build", str(digits_tiny), "--board", "ulx3s-85f", "--check"]) == 0
    text = capsys.readouterr().out
    assert "fits the ulx3s-85f" in text and "32 lanes, two events per command; cycle model" \
        in text
    assert fake_pnr == []
    assert main(["build", str(digits_tiny), "--board", "ulx3s-85f", "--check", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["clock_mhz"] == 50.0     # the board's default

    # With the weights in SDRAM the latency counts the prefetch's stalls (warm, images back
    # to back) and reports the weight bytes an image reads.
    assert main(["build", str(digits_tiny), "--board", "ulx3s-85f", "--sdram", "--lanes", "8",
                 "--check", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    plan = plan_board(ir.load(digits_tiny), BOARDS["ulx3s-85f"], lanes=8, sdram=True)
    sdram = latency.sdram_cycles_per_image(ir.load(digits_tiny), plan.config, 50.0)
    assert printed["sdram"] is True and printed["cycles_per_image"] == round(sdram["cycles"], 1)
    assert printed["clock_mhz"] == 50.0             # the board's default, with --sdram too
    assert printed["stall_cycles"] == round(sdram["stall_cycles"], 1)
    assert printed["weight_bytes_per_image"] == round(sdram["weight_bytes"]) > 0
    compute = latency.cycles_per_image(ir.load(digits_tiny), 8, 32, config=plan.config)
    assert sdram["cycles"] == compute + sdram["stall_cycles"]
    _check_latency(printed)
    assert main(["build", str(digits_tiny), "--board", "ulx3s-85f", "--sdram", "--lanes", "8",
                 "--check"]) == 0
    assert "cycles waiting for them" in capsys.readouterr().out

    assert main(["build", str(digits_tiny), "--target", "asic", "--check"]) == 2
    assert "does not apply to --target asic" in capsys.readouterr().err
