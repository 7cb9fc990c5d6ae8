"""The folders are the architecture: hdl/, sim/ and boards/ never pull torch in."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("package", ["sdtforge.hdl", "sdtforge.sim", "sdtforge.boards",
                                     "sdtforge.quantize"])
def test_no_torch_import(package):
    code = (
        "import importlib, pkgutil, sys\n"
        f"pkg = importlib.import_module({package!r})\n"
        "for m in pkgutil.iter_modules(pkg.__path__):\n"
        "    if m.name in ('quantizer', 'qat'):\n"
        "        continue  # the torch side of sdtforge.quantize, imported on use\n"
        f"    importlib.import_module({package!r} + '.' + m.name)\n"
        "assert 'torch' not in sys.modules, sorted(k for k in sys.modules if 'torch' in k)[:5]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
