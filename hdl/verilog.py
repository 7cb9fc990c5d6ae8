"""The accelerator's Verilog, as ``sdtforge generate`` writes it and co-simulation compiles it.

Amaranth's converter (``amaranth.back.verilog``) writes every memory's initial contents row by
row, zeros included. The accelerator's memories start empty (``init=[]``): the load stream
fills the model's memories and the layers write the maps before they read them. For a
paper-scale model that is millions of rows of zeros: cifar10-2-256 at 8 lanes took 5 min and
2.7 GB, nearly all of it in the converter's initial-value cells. :func:`accelerator_verilog`
leaves out the initial value of a memory whose rows are all zero, so such a memory starts
undefined, as an SRAM macro does; a memory with non-zero rows keeps them. Co-simulation on
Icarus, where an undefined memory reads ``x``, stays bit-exact: no layer reads a row before it
is written (``tests/sim/test_cosim.py``).

Amaranth has no option for a memory without initial contents, so this wraps its RTLIL
emitter's ``emit_memory`` while converting (Amaranth 0.5, pinned in ``pyproject.toml``;
``tests/hdl/test_verilog.py`` fails if the emitter changes).
"""

import contextlib

from amaranth.back import rtlil, verilog

__all__ = ["TOP", "accelerator_verilog", "zero_memories_uninitialised"]

#: The top module's name in the generated Verilog.
TOP = "sdtforge_accel"


@contextlib.contextmanager
def zero_memories_uninitialised():
    """Within the block, Amaranth's RTLIL (and so Verilog) converter writes no initial value
    for a memory whose rows are all zero."""
    emitter = rtlil.ModuleEmitter
    original = emitter.emit_memory

    def emit_memory(self, cell_idx, cell):
        if any(cell.init):
            original(self, cell_idx, cell)

    emitter.emit_memory = emit_memory
    try:
        yield
    finally:
        emitter.emit_memory = original


def accelerator_verilog(config):
    """The Verilog of :class:`~sdtforge.hdl.accelerator.Accelerator` for ``config`` (top
    module :data:`TOP`; deterministic: no source locations)."""
    from .accelerator import Accelerator

    with zero_memories_uninitialised():
        return verilog.convert(Accelerator(config), name=TOP, emit_src=False, ports=None)
