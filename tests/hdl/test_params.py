"""Constructor parameter checks of every unit: the exception type and message are pinned."""

import pytest
from amaranth.hdl import signed
from amaranth.lib.data import ArrayLayout

from sdtforge.hdl.event_encoder import EventEncoder
from sdtforge.hdl.lif import LIFUnit
from sdtforge.hdl.pe_array import PEArray
from sdtforge.hdl.pool import IntMaxPool, SpikeMaxPool
from sdtforge.hdl.residual import AlignAdd
from sdtforge.hdl.sdsa import SDSAUnit
from sdtforge.hdl.weights import ReadPortWeights, WeightMemory

ROW = ArrayLayout(signed(8), 4)


@pytest.mark.parametrize("build,exc,message", [
    (lambda: EventEncoder(6, 2), ValueError, "Word width must be a positive power of two, not 6"),
    (lambda: EventEncoder("8", 2), TypeError, "Word width must be an integer, not '8'"),
    (lambda: EventEncoder(8, 0), ValueError,
     "Word address width must be a positive integer, not 0"),
    (lambda: PEArray(0, 16), ValueError, "Lane count must be a positive integer, not 0"),
    (lambda: PEArray(4, 16, weight_width=20), ValueError,
     "Weight width 20 exceeds accumulator width 16"),
    (lambda: PEArray(4, 16, bias_width=17), ValueError,
     "Bias width 17 exceeds accumulator width 16"),
    (lambda: PEArray(4, 16.0), TypeError, "Accumulator width must be an integer, not 16.0"),
    (lambda: LIFUnit(4, 0, 8), ValueError, "Depth must be a positive integer, not 0"),
    (lambda: LIFUnit(4, 8, 12, v_width=10), ValueError,
     "Membrane width 10 is narrower than the input or threshold width 12"),
    (lambda: SDSAUnit(20, 8, 4), ValueError,
     "Channel count 20 is not a multiple of the word width 8"),
    (lambda: SDSAUnit(16, 8, 4, mode="max"), ValueError,
     "Mode must be 'lif' or 'or', not 'max'"),
    (lambda: SDSAUnit(16, 8, 4, shift=-1), ValueError, "Shift must be non-negative, not -1"),
    (lambda: SDSAUnit(16, 8, 4, shift=None), TypeError, "Shift must be an integer, not None"),
    (lambda: SpikeMaxPool(0), ValueError, "Word width must be a positive integer, not 0"),
    (lambda: IntMaxPool(4, True), TypeError, "Value width must be an integer, not True"),
    (lambda: AlignAdd(4, 12, 8, -2), ValueError,
     "Maximum shift must be non-negative, not -2"),
    (lambda: AlignAdd(4, 12, 8, 1.5), TypeError, "Maximum shift must be an integer, not 1.5"),
    (lambda: WeightMemory(ROW, 0), ValueError, "Weight depth must be a positive integer, not 0"),
    (lambda: ReadPortWeights(ROW, -1), TypeError,
     "Address width must be a non-negative integer, not -1"),
])
def test_parameter_errors(build, exc, message):
    with pytest.raises(exc) as info:
        build()
    assert str(info.value) == message
