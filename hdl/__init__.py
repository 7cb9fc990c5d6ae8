"""Amaranth components of the accelerator and the IR → program compiler."""

from .event_encoder import EventEncoder
from .fetch import NeighbourhoodFetch
from .lif import LIFUnit
from .pe_array import PEArray, PEOp
from .pool import IntMaxPool, SpikeMaxPool, SpikePoolStage
from .program import ProgramSequencer
from .residual import AlignAdd
from .sdsa import SDSAOp, SDSAUnit
from .sdsa_sequencer import SDSASequencer
from .weights import ReadPortWeights, WeightMemory
from .writeback import RowWriteBack

__all__ = ["AlignAdd", "EventEncoder", "IntMaxPool", "LIFUnit", "NeighbourhoodFetch", "PEArray",
           "PEOp", "ProgramSequencer", "ReadPortWeights", "RowWriteBack", "SDSAOp",
           "SDSASequencer", "SDSAUnit", "SpikeMaxPool", "SpikePoolStage", "WeightMemory"]
