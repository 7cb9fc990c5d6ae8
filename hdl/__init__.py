"""Amaranth components of the accelerator and the IR → program compiler."""

from .event_encoder import EventEncoder
from .lif import LIFUnit
from .pe_array import PEArray, PEOp
from .pool import IntMaxPool, SpikeMaxPool
from .residual import AlignAdd
from .sdsa import SDSAOp, SDSAUnit
from .weights import ReadPortWeights, WeightMemory

__all__ = ["AlignAdd", "EventEncoder", "IntMaxPool", "LIFUnit", "PEArray", "PEOp",
           "ReadPortWeights", "SDSAOp", "SDSAUnit", "SpikeMaxPool", "WeightMemory"]
