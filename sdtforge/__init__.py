"""sdtforge: Spike-Driven Transformer → event-driven accelerator generator.

The project is one import namespace: ``sdtforge.model`` (PyTorch SDT), ``sdtforge.quantize``
(integer model, IR file), ``sdtforge.sim`` (golden model, co-simulation), ``sdtforge.hdl``
(Amaranth generators), ``sdtforge.boards`` (board tops) and this package (CLI and flow glue).
"""

from .errors import UserError

__all__ = ["UserError", "__version__"]
__version__ = "0.1.0"
