"""PyTorch Spike-Driven Transformer v1 (float, trainable), datasets and training.

Public API (``docs/model.md``): :class:`SDTConfig`, :class:`SpikeDrivenTransformer`,
:data:`PRESETS`, :func:`load_dataset`, :func:`load_checkpoint`, :func:`save_checkpoint`,
:func:`load_reference_checkpoint`, :func:`frame_events`, :func:`read_events`, :func:`train`
and :data:`SHIPPED_CHECKPOINTS`.
Names that need torch are imported on first use, so ``import sdtforge.model`` stays light.
"""

import importlib
from pathlib import Path

#: Checkpoints shipped with the package: preset name → path of an sdtforge checkpoint.
SHIPPED_CHECKPOINTS = {
    name: Path(__file__).resolve().parent / "checkpoints" / f"{name}.pt"
    for name in ("digits-tiny", "digits-small")
}

_LAZY = {
    "SDTConfig": "config",
    "Preset": "presets", "PRESETS": "presets", "get_preset": "presets",
    "load_dataset": "data", "DATASETS": "data", "DATASET_INFO": "data",
    "integer_inputs": "data", "load_integer_inputs": "data",
    "MultiStepLIF": "lif",
    "SpikeDrivenTransformer": "sdt", "SPIKE_NAMES": "sdt", "spike_names": "sdt",
    "load_checkpoint": "checkpoint", "save_checkpoint": "checkpoint",
    "load_reference_checkpoint": "checkpoint", "FORMAT": "checkpoint",
    "frame_events": "events", "read_events": "events",
    "train": "training", "evaluate": "training", "TrainSettings": "training",
}

__all__ = ["SHIPPED_CHECKPOINTS", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
