import json

import pytest

from sdtforge.cli import main


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, capsys, fake_pnr):
    """Every stage of ``sdtforge demo`` through the CLI. The board stage runs the build command
    (fit check, the board top's elaboration, its report) with place and route stood in by
    fixed tool reports (``fake_pnr``): the real iCEBreaker build of the same model is
    ``test_build_json.py::test_icebreaker_build_json``, so the slow tests place and route it
    once (``make demo`` builds it for real)."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--images", "2"]) == 0
    stages = json.loads((out / "demo.json").read_text())
    status = {s["stage"]: s["status"] for s in stages}
    assert status["co-simulate 2 images (verilator)"] == "ok"
    assert status["report"] == "ok"
    assert status["icebreaker bitstream"] == "ok" and fake_pnr == [1]
    board = json.loads((out / "icebreaker" / "report.json").read_text())
    assert (board["board"], board["lc"], board["fmax_mhz"]) == ("icebreaker", 5259, 25.59)
    cosim = json.loads((out / "cosim.json").read_text())
    assert cosim["bit_exact"] == cosim["images"] == 2
    md = (out / "report" / "report.md").read_text()
    assert "RTL (co-simulation)" in md and "## ASIC estimate" in md
    assert "| icebreaker | 8 | 5259 / 5280 |" in md          # the board stage's figures
    assert "bit-exact: 2/2 images" in capsys.readouterr().err
