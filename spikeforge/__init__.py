"""spikeforge: Spike-Driven Transformer → event-driven accelerator generator.

The project is one import namespace: ``spikeforge.model`` (PyTorch SDT), ``spikeforge.quantize``
(integer model, IR file), ``spikeforge.sim`` (golden model, co-simulation), ``spikeforge.hdl``
(Amaranth generators), ``spikeforge.boards`` (board tops) and this package (CLI and flow glue).
"""

from .errors import UserError

__all__ = ["UserError", "__version__"]
__version__ = "0.1.0"
