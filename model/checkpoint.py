"""sdtforge checkpoints (``sdtforge-checkpoint/1``) and reference-code checkpoints.

An sdtforge checkpoint is a ``torch.save``\\ d dict::

    {"format": "sdtforge-checkpoint/1", "state_dict": ..., "config": asdict(SDTConfig),
     "preset": str, "dataset": str, "seed": int, "train_settings": dict,
     "metrics": {"test_accuracy", "train_accuracy", "epochs", "seconds"}}

It holds only tensors and plain Python data, so it loads with ``torch.load(weights_only=True)``.
"""

import dataclasses
import re
from pathlib import Path

import torch

from sdtforge.errors import UserError

from .config import SDTConfig
from .presets import PRESETS
from .sdt import SpikeDrivenTransformer

__all__ = ["FORMAT", "save_checkpoint", "load_checkpoint", "load_reference_checkpoint",
           "read_reference_state_dict", "reference_shape"]

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


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _load_failure(exc):
    """One plain line saying why ``torch.load`` failed (torch's own message is several lines
    with terminal colour codes; the unpickler's line names the object it refused)."""
    lines = [_ANSI.sub("", line).strip() for line in str(exc).splitlines()]
    lines = [line for line in lines if line] or [type(exc).__name__]
    for line in lines:
        m = re.search(r"Unsupported global: GLOBAL (\S+)", line)
        if m:
            return f"it holds a pickled {m.group(1)} object beside the tensors"
    return lines[0]


def _is_integer_model(path):
    """Whether ``path`` looks like an ``.sfm`` file (a ZIP archive with a ``header.npy``)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return "header.npy" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def _torch_load(path, what):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {str(path)!r} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if _is_integer_model(path):
            raise UserError(f"{what} {str(path)!r} is an integer model (.sfm), not a float "
                            "checkpoint (.pt); give the checkpoint it was quantized from") \
                from None
        raise UserError(f"{what} {str(path)!r} cannot be read as a tensors-only torch file "
                        f"({_load_failure(exc)})") from None


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


def reference_shape(sd):
    """The :class:`SDTConfig` fields a reference state_dict's shapes tell: ``in_channels``,
    ``embed_dims``, ``num_classes``, ``depths`` and ``mlp_ratio``."""
    try:
        shape = {
            "in_channels": sd["patch_embed.proj_conv.weight"].shape[1],
            "embed_dims": sd["patch_embed.proj_conv3.weight"].shape[0],
            "num_classes": sd["head.weight"].shape[0],
            "depths": 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("block.")),
        }
        shape["mlp_ratio"] = sd["block.0.mlp.fc1_conv.weight"].shape[0] // shape["embed_dims"]
    except (KeyError, ValueError, IndexError, AttributeError) as exc:
        raise UserError(f"the state_dict does not look like a Spike-Driven Transformer "
                        f"(reference key names expected; missing {exc})") from None
    return {k: int(v) for k, v in shape.items()}


def _infer_config(sd, overrides):
    """Config fields readable from the weights' shapes; the rest defaults to CIFAR-10 2-x."""
    base = dataclasses.asdict(PRESETS["cifar10-2-512"].config)
    base.update(reference_shape(sd))
    base.update(overrides)
    c = base["in_channels"]
    if base.get("encoding") == "events":
        # Event counts go in as they are (the reference does not normalize them).
        base["mean"] = overrides.get("mean", (0.0,) * c)
        base["std"] = overrides.get("std", (1.0,) * c)
    elif c != 3 and not {"mean", "std"} <= set(overrides):
        # The CIFAR statistics cannot fit; a guess would score the model wrongly.
        raise UserError(f"the checkpoint takes {c}-channel input: give its normalization "
                        f"(mean=..., std=...; sdtforge convert --mean/--std), {c} values each")
    return SDTConfig.from_dict(base)


def read_reference_state_dict(path_or_state_dict, *, trusted=False):
    """The state_dict of a reference-code checkpoint (file or loaded object), unwrapped from
    ``{"model": sd}``/``{"state_dict": sd}`` and without a ``module.`` prefix; see
    :func:`load_reference_checkpoint` for ``trusted``."""
    obj = path_or_state_dict
    if isinstance(obj, (str, Path)):
        if not Path(obj).is_file():
            raise UserError(f"reference checkpoint {str(obj)!r} does not exist")
        if trusted:
            try:
                obj = torch.load(obj, map_location="cpu", weights_only=False)
            except Exception as exc:
                raise UserError(f"reference checkpoint {str(obj)!r} cannot be read "
                                f"({_load_failure(exc)})") from None
        else:
            try:
                obj = _torch_load(obj, "reference checkpoint")
            except UserError as exc:
                raise UserError(f"{exc}; if the file is a trusted reference checkpoint, load it "
                                "with trusted=True (sdtforge convert --trusted)") from None
    sd = _unwrap(obj)
    if not isinstance(sd, dict):
        raise UserError(f"expected a state_dict (a dict of tensors), got {type(sd).__name__}")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}


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
        models, e.g. ``img_size=(224, 224), pooling_stat="1111"`` for ImageNet; ``mean`` and
        ``std`` must be given for input that is not 3-channel. An event model takes
        ``encoding="events"`` (no normalization) and, where it was trained with the
        reference's ``dvs_mode``, ``dvs=True``.

    Returns
    -------
    SpikeDrivenTransformer
        In eval mode; loaded with ``strict=True`` (only the reference's unused
        ``attn.talking_heads`` weight is dropped).
    """
    sd = read_reference_state_dict(path_or_state_dict, trusted=trusted)
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
