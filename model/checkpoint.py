"""sdtforge checkpoints (``sdtforge-checkpoint/1``) and reference-code checkpoints.

An sdtforge checkpoint is a ``torch.save``\\ d dict::

    {"format": "sdtforge-checkpoint/1", "state_dict": ..., "config": asdict(SDTConfig),
     "preset": str, "dataset": str, "seed": int, "train_settings": dict,
     "metrics": {"test_accuracy", "train_accuracy", "epochs", "seconds"}}

It holds only tensors and plain Python data, so it loads with ``torch.load(weights_only=True)``.
"""

import dataclasses
from pathlib import Path

import torch

from sdtforge.errors import UserError

from .config import SDTConfig
from .presets import PRESETS
from .sdt import SpikeDrivenTransformer

__all__ = ["FORMAT", "save_checkpoint", "load_checkpoint", "load_reference_checkpoint"]

FORMAT = "sdtforge-checkpoint/1"
_KEYS = ("format", "state_dict", "config", "preset", "dataset", "seed", "train_settings",
         "metrics")


def save_checkpoint(path, model, *, preset, dataset, seed, train_settings, metrics):
    """Write ``model`` and its provenance as an sdtforge checkpoint; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {
        "format": FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": dataclasses.asdict(model.config),
        "preset": preset,
        "dataset": dataset,
        "seed": int(seed),
        "train_settings": dict(train_settings),
        "metrics": dict(metrics),
    }
    torch.save(ckpt, path)
    return path


def _torch_load(path, what):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {str(path)!r} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{what} {str(path)!r} cannot be read as a tensors-only torch file "
                        f"({first})") from None


def load_checkpoint(path):
    """Load an sdtforge checkpoint.

    Parameters
    ----------
    path : str or Path
        A file written by ``sdtforge train`` (or :func:`save_checkpoint`).

    Returns
    -------
    model : SpikeDrivenTransformer
        In eval mode, on the CPU.
    ckpt : dict
        The whole checkpoint dict (keys in the module docstring).

    Raises
    ------
    UserError
        The file is missing, unreadable, or not an sdtforge checkpoint.
    """
    ckpt = _torch_load(path, "checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise UserError(f"{str(path)!r} is not an sdtforge checkpoint (format {found!r}, "
                        f"expected {FORMAT!r}); train one with sdtforge train, or load a "
                        f"reference-code checkpoint with load_reference_checkpoint")
    missing = [k for k in _KEYS if k not in ckpt]
    if missing:
        raise UserError(f"sdtforge checkpoint {str(path)!r} lacks the fields {missing}")
    try:
        config = SDTConfig.from_dict(ckpt["config"])
        model = SpikeDrivenTransformer(config)
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except (ValueError, TypeError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"sdtforge checkpoint {str(path)!r} is inconsistent: {first}") from None
    model.eval()
    return model, ckpt


def _unwrap(obj):
    for key in ("state_dict", "model", "state_dict_ema", "model_ema"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            return obj[key]
    return obj


def _infer_config(sd, overrides):
    """Config fields readable from the weights' shapes; the rest defaults to CIFAR-10 2-x."""
    base = dataclasses.asdict(PRESETS["cifar10-2-512"].config)
    try:
        inferred = {
            "in_channels": sd["patch_embed.proj_conv.weight"].shape[1],
            "embed_dims": sd["patch_embed.proj_conv3.weight"].shape[0],
            "num_classes": sd["head.weight"].shape[0],
            "depths": 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("block.")),
        }
        inferred["mlp_ratio"] = sd["block.0.mlp.fc1_conv.weight"].shape[0] // inferred[
            "embed_dims"]
    except (KeyError, ValueError, IndexError, AttributeError) as exc:
        raise UserError(f"the state_dict does not look like a Spike-Driven Transformer "
                        f"(reference key names expected; missing {exc})") from None
    base.update(inferred)
    if base["in_channels"] != 3:
        # CIFAR statistics do not fit; a neutral normalization until the caller passes one.
        base["mean"], base["std"] = (0.5,) * base["in_channels"], (0.5,) * base["in_channels"]
    base.update(overrides)
    return SDTConfig.from_dict(base)


def load_reference_checkpoint(path_or_state_dict, *, trusted=False, **config_overrides):
    """Build a model from a reference-code (BICLab/Spike-Driven-Transformer) checkpoint.

    Parameters
    ----------
    path_or_state_dict : str, Path or dict
        A checkpoint file or an already loaded dict; a ``{"model": sd}`` or
        ``{"state_dict": sd}`` wrapper and a ``module.`` prefix (DataParallel) are removed.
    trusted : bool
        Reference training scripts pickle extra Python objects (e.g. their argparse namespace)
        next to the weights, which ``torch.load(weights_only=True)`` refuses. Pass ``True``
        only for a file you trust, to unpickle it fully.
    **config_overrides
        :class:`SDTConfig` fields. ``in_channels``, ``embed_dims``, ``depths``,
        ``num_classes`` and ``mlp_ratio`` are read from the weights; ``img_size``, ``T``,
        ``pooling_stat``, ``num_heads``, ``mean`` and ``std`` default to the CIFAR-10 preset
        (32×32, T=4, ``"0011"``, 8 heads, CIFAR-10 statistics) and must be given for other
        models, e.g. ``img_size=(224, 224), pooling_stat="1111"`` for ImageNet.

    Returns
    -------
    SpikeDrivenTransformer
        In eval mode; loaded with ``strict=True`` (only the reference's unused
        ``attn.talking_heads`` weight is dropped).
    """
    obj = path_or_state_dict
    if isinstance(obj, (str, Path)):
        if trusted:
            if not Path(obj).is_file():
                raise UserError(f"reference checkpoint {str(obj)!r} does not exist")
            obj = torch.load(obj, map_location="cpu", weights_only=False)
        else:
            if not Path(obj).is_file():
                raise UserError(f"reference checkpoint {str(obj)!r} does not exist")
            try:
                obj = _torch_load(obj, "reference checkpoint")
            except UserError as exc:
                raise UserError(f"{exc}; if the file is a trusted reference checkpoint, load it "
                                "with trusted=True (sdtforge convert --trusted)") from None
    sd = _unwrap(obj)
    if not isinstance(sd, dict):
        raise UserError(f"expected a state_dict (a dict of tensors), got {type(sd).__name__}")
    sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}
    try:
        config = _infer_config(sd, config_overrides)
    except (ValueError, TypeError) as exc:
        raise UserError(f"cannot build a model for this checkpoint: {exc}") from None
    model = SpikeDrivenTransformer(config)
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise UserError(f"the checkpoint does not match the model {config}: "
                        f"{str(exc).strip().splitlines()[-1].strip()}") from None
    return model.eval()
