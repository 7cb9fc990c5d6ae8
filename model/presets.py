"""Named model presets: an :class:`SDTConfig`, its dataset and training defaults (no torch)."""

from dataclasses import dataclass

from .config import SDTConfig

__all__ = ["Preset", "PRESETS", "get_preset"]

# Mean/std of the digits training split in the u8/255 domain (computed once from
# load_dataset("digits", "train"); the split is fixed, so these are constants).
_DIGITS_MEAN, _DIGITS_STD = (0.3054,), (0.3760,)
# The usual CIFAR-10 per-channel statistics (the reference code's training config).
_CIFAR_MEAN, _CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preset:
    """A named model shape with its dataset and training defaults.

    Parameters
    ----------
    name : str
        Preset name (``sdtforge train --preset NAME``).
    config : SDTConfig
        The model.
    dataset : str
        Dataset name for :func:`sdtforge.model.data.load_dataset`.
    epochs, batch_size : int
        Training defaults.
    lr, weight_decay, label_smoothing : float
        AdamW learning rate (cosine-annealed to 0), weight decay, and label smoothing.
    description : str
        One line for the presets table.
    """

    name: str
    config: SDTConfig
    dataset: str
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    description: str = ""


def _digits(name, d, depths, epochs, description):
    cfg = SDTConfig(in_channels=1, img_size=(8, 8), embed_dims=d, depths=depths, T=4,
                    pooling_stat="0001", num_classes=10, mean=_DIGITS_MEAN, std=_DIGITS_STD)
    return Preset(name, cfg, "digits", epochs=epochs, batch_size=32, lr=2e-3,
                  description=description)


def _cifar(name, d):
    cfg = SDTConfig(in_channels=3, img_size=(32, 32), embed_dims=d, depths=2, T=4,
                    pooling_stat="0011", num_classes=10, mean=_CIFAR_MEAN, std=_CIFAR_STD)
    return Preset(name, cfg, "cifar10", epochs=300, batch_size=64, lr=3e-4, weight_decay=0.06,
                  description=f"reference CIFAR-10 2-{d} (needs --data-dir)")


PRESETS = {p.name: p for p in [
    _digits("digits-tiny", 32, 1, 60, "shipped default; fits an iCE40 UP5K"),
    _digits("digits-small", 64, 2, 60, "larger digits model for ECP5"),
    _cifar("cifar10-2-256", 256),
    _cifar("cifar10-2-512", 512),
    Preset("imagenet-8-512",
           SDTConfig(in_channels=3, img_size=(224, 224), embed_dims=512, depths=8, T=4,
                     pooling_stat="1111", num_classes=1000, mean=_IMAGENET_MEAN,
                     std=_IMAGENET_STD),
           "imagenet", epochs=300, batch_size=32, lr=5e-4, weight_decay=0.01,
           description="reference ImageNet 8-512 (shape only; no ImageNet reader)"),
]}


def get_preset(name):
    """Return the :class:`Preset` called ``name``; unknown names raise ``UserError``."""
    try:
        return PRESETS[name]
    except KeyError:
        from sdtforge.errors import UserError
        raise UserError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)} "
                        f"(sdtforge presets lists them)") from None
