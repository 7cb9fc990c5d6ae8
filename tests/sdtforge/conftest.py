"""Fixtures of the CLI tests."""

import pytest


@pytest.fixture
def fake_pnr(monkeypatch):
    """``build_bitstream`` without the tools: figures of fixed Yosys / nextpnr reports."""
    from sdtforge.boards import build

    calls = []

    def fake(board, top, out_dir, *, seed=1, name="sdtforge", f_sync, progress=None):
        calls.append(seed)
        out_dir.mkdir(parents=True, exist_ok=True)
        cells = {"SB_LUT4": 3905, "SB_DFF": 1000, "SB_DFFE": 898}
        report = {"utilization": {"ICESTORM_LC": {"used": 5259}, "ICESTORM_RAM": {"used": 27},
                                  "ICESTORM_SPRAM": {"used": 2}, "ICESTORM_DSP": {"used": 0}},
                  "fmax": {"clk": {"achieved": 25.59}}}
        figures = build.summarize(board, cells, report, f_sync)
        figures["seed"] = seed
        return figures

    monkeypatch.setattr(build, "build_bitstream", fake)
    return calls
