"""Named model presets: an :class:`SDTConfig`, its dataset and training defaults (no torch)."""

from dataclasses import dataclass

from .config import SDTConfig
from .data import DATASET_INFO

__all__ = ["Preset", "PRESETS", "INTEGER_PRESETS", "get_preset"]

# The datasets' usual normalization (u8/255 domain), one table for presets and convert.
_DIGITS_MEAN, _DIGITS_STD = DATASET_INFO["digits"].mean, DATASET_INFO["digits"].std
_CIFAR_MEAN, _CIFAR_STD = DATASET_INFO["cifar10"].mean, DATASET_INFO["cifar10"].std
_IMAGENET_MEAN, _IMAGENET_STD = DATASET_INFO["imagenet"].mean, DATASET_INFO["imagenet"].std


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


def _dvs(name, img, t, pooling, classes, dvs, dataset, description):
    # The reference's DVS shapes (its conf/gesture and conf/cifar10-dvs): 2 blocks of D = 256,
    # two polarity channels of raw event counts (no normalization).
    cfg = SDTConfig(in_channels=2, img_size=(img, img), embed_dims=256, depths=2, T=t,
                    pooling_stat=pooling, num_classes=classes, mean=(0.0, 0.0),
                    std=(1.0, 1.0), encoding="events", dvs=dvs)
    return Preset(name, cfg, dataset, epochs=200, batch_size=16, lr=3e-4, weight_decay=0.06,
                  description=description)


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
    _dvs("dvs-gesture", 128, 16, "0111", 11, False, "dvs-gesture",
         "reference DVS128 Gesture 2-256, T=16, event frames"),
    _dvs("cifar10-dvs", 64, 10, "0011", 10, True, "cifar10-dvs",
         "reference CIFAR10-DVS 2-256, T=10, dvs-mode attention"),
]}


#: The presets the integer flow (quantize, golden model, accelerator) takes: all of them.
INTEGER_PRESETS = tuple(PRESETS)


def get_preset(name):
    """Return the :class:`Preset` called ``name``; unknown names raise ``UserError``."""
    try:
        return PRESETS[name]
    except KeyError:
        from sdtforge.errors import UserError
        raise UserError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)} "
                        f"(sdtforge presets lists them)") from None
