"""Datasets as uint8 pixels ``[N, C, H, W]`` (the accelerator's input format) and int64 labels.

``digits``
    scikit-learn's ``load_digits`` (1797 images, 8×8, 17 grey levels 0..16, mapped to uint8 by
    ``round(v * 255 / 16)``), split once and for all with
    ``train_test_split(test_size=0.2, random_state=0, stratify=labels)``: 1437 train, 360 test.
``cifar10``
    A local copy of the standard CIFAR-10 "python version" batches (``data_batch_1`` …
    ``data_batch_5``, ``test_batch``), in ``data_dir`` or ``data_dir/cifar-10-batches-py``;
    nothing is downloaded.
``cifar100``
    The CIFAR-100 "python version" files ``train`` and ``test`` (fine labels, 0..99), in
    ``data_dir`` or ``data_dir/cifar-100-python``.
``dvs-gesture``
    DVS128 Gesture as spikingjelly stores its events: ``events_np/{train,test}/<label>/*.npz``
    (arrays ``x``, ``y``, ``t``, ``p``; labels 0..10), in ``data_dir`` (or without the
    ``events_np`` level). Framed into ``time_steps`` frames of event counts ``[T, 2, 128, 128]``
    per sample as the reference trains (``split_by="number"``, :mod:`sdtforge.model.events`).
``cifar10-dvs``
    CIFAR10-DVS as spikingjelly stores its events, ``events_np/<class name>/*.npz`` (128×128
    sensor; classes in name order are labels 0..9). As the reference: each sample framed into
    ``time_steps`` frames, each frame resized to 64×64 (bilinear, antialiased, as its
    torchvision ``Resize``), and per class the first 90 % of the samples (file name order,
    rounded up) are ``train``, the rest ``test``.

:data:`DATASET_INFO` also names ImageNet, which sdtforge does not read, so that a checkpoint can
say which data it expects and ``convert`` can check a model's shape against it.
"""

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sdtforge.errors import UserError

__all__ = ["DATASETS", "DATASET_INFO", "DatasetInfo", "load_dataset", "integer_inputs",
           "load_integer_inputs"]


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset's samples are: ``channels`` × ``size`` input, ``classes`` labels, the
    usual normalization (``u8/255`` domain; ``None`` for event counts, which go in as they
    are) and whether sdtforge reads it (``readable``)."""

    channels: int
    size: tuple
    classes: int
    mean: tuple = None
    std: tuple = None
    readable: bool = False


#: Every dataset a checkpoint may name. The CIFAR statistics are the reference training
#: configs'; the digits ones are computed from the fixed training split.
DATASET_INFO = {
    "digits": DatasetInfo(1, (8, 8), 10, (0.3054,), (0.3760,), True),
    "cifar10": DatasetInfo(3, (32, 32), 10, (0.4914, 0.4822, 0.4465),
                           (0.2470, 0.2435, 0.2616), True),
    "cifar100": DatasetInfo(3, (32, 32), 100, (0.5071, 0.4867, 0.4408),
                            (0.2675, 0.2565, 0.2761), True),
    "imagenet": DatasetInfo(3, (224, 224), 1000, (0.485, 0.456, 0.406),
                            (0.229, 0.224, 0.225)),
    "dvs-gesture": DatasetInfo(2, (128, 128), 11, readable=True),
    "cifar10-dvs": DatasetInfo(2, (64, 64), 10, readable=True),
}

#: The datasets :func:`load_dataset` reads.
DATASETS = tuple(n for n, info in DATASET_INFO.items() if info.readable)
_SPLITS = ("train", "test")
_CIFAR_LAYOUT = ("the standard CIFAR-10 python batches data_batch_1 … data_batch_5 and "
                 "test_batch (from cifar-10-python.tar.gz), directly in it or in its "
                 "cifar-10-batches-py folder")
_CIFAR100_LAYOUT = ("the standard CIFAR-100 python files train and test (from "
                    "cifar-100-python.tar.gz), directly in it or in its cifar-100-python folder")


def integer_inputs(images):
    """``images`` as the integer model and the accelerator take them: uint8 pixels as they
    are; event counts rounded and saturated to 0..255 (the input is one byte per count).

    The counts of a frame rarely reach 255; a count above it is the one place where the
    integer flow's input differs from the float model's (docs/integer-semantics.md §4.1).
    """
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def load_integer_inputs(name, split, config, data_dir=None):
    """One split of dataset ``name`` as the integer model of ``config`` (an IR config dict)
    takes it (an :class:`~sdtforge.model.SDTConfig` as a dict will do): :func:`load_dataset`
    framed to its ``T`` for an event model, then :func:`integer_inputs`. Returns ``(inputs,
    labels)``."""
    from sdtforge.quantize.ir import config_encoding  # NumPy only

    time_steps = int(config["T"]) if config_encoding(config) == "events" else None
    images, labels = load_dataset(name, split, data_dir, time_steps=time_steps)
    return integer_inputs(images), labels


def load_dataset(name, split, data_dir=None, time_steps=None):
    """Load one split of a dataset.

    Parameters
    ----------
    name : str
        ``"digits"``, ``"cifar10"`` or ``"cifar100"`` (:data:`DATASETS`).
    split : str
        ``"train"`` or ``"test"``.
    data_dir : str or Path, optional
        Folder of a local dataset copy (required for CIFAR and DVS; ignored for ``digits``).
    time_steps : int, optional
        Frames per sample of an event dataset (the model's ``T``; required there).

    Returns
    -------
    images : numpy.ndarray
        uint8 ``[N, C, H, W]``; for an event dataset ``[N, T, C, H, W]`` frames: int16 event
        counts (``dvs-gesture``), float32 resized counts (``cifar10-dvs``).
    labels : numpy.ndarray
        int64 ``[N]``.

    Raises
    ------
    UserError
        Unknown dataset or split, or missing or malformed local data.
    """
    if split not in _SPLITS:
        raise UserError(f"unknown split {split!r}; use one of {', '.join(_SPLITS)}")
    if name == "digits":
        return _load_digits(split)
    if name == "cifar10":
        return _load_cifar10(split, data_dir)
    if name == "cifar100":
        return _load_cifar100(split, data_dir)
    if name == "dvs-gesture":
        return _load_dvs_gesture(split, data_dir, time_steps)
    if name == "cifar10-dvs":
        return _load_cifar10_dvs(split, data_dir, time_steps)
    if name in DATASET_INFO:
        raise UserError(f"sdtforge has no reader for the {name} dataset (it reads "
                        f"{', '.join(DATASETS)}); evaluate such a model in Python "
                        f"(docs/model.md)")
    raise UserError(f"unknown dataset {name!r}; sdtforge reads {', '.join(DATASETS)}")


def _load_digits(split):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    labels = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, labels, test_size=0.2, random_state=0, stratify=labels)
    return (x_tr, y_tr) if split == "train" else (x_te, y_te)


def _cifar_root(name, title, data_dir, layout, marker, subfolder):
    """The folder of a CIFAR copy: ``data_dir``, or its ``subfolder`` where ``marker`` is
    there and not in ``data_dir`` itself."""
    if data_dir is None:
        raise UserError(f"{name} needs --data-dir pointing to a local copy of {layout}; "
                        "nothing is downloaded")
    root = Path(data_dir)
    if not root.is_dir():
        raise UserError(f"{title} data folder {str(root)!r} does not exist; expected {layout}")
    if not (root / marker).exists() and (root / subfolder).is_dir():
        root = root / subfolder
    return root


def _load_cifar10(split, data_dir):
    root = _cifar_root("cifar10", "CIFAR-10", data_dir, _CIFAR_LAYOUT, "test_batch",
                       "cifar-10-batches-py")
    files = ([f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"])
    images, labels = [], []
    for fname in files:
        x, y = _read_cifar_batch(root / fname)
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


def _load_cifar100(split, data_dir):
    root = _cifar_root("cifar100", "CIFAR-100", data_dir, _CIFAR100_LAYOUT, "test",
                       "cifar-100-python")
    path = root / split
    if not path.is_file():
        raise UserError(f"CIFAR-100 file {str(path)!r} is missing; expected " + _CIFAR100_LAYOUT)
    return _read_cifar_batch(path, "CIFAR-100", b"fine_labels", 100)


_GESTURE_LAYOUT = ("spikingjelly's DVS128 Gesture event files events_np/train|test/<label>/*.npz "
                   "(labels 0..10), in it or without the events_np level")


_CIFAR10_DVS_LAYOUT = ("spikingjelly's CIFAR10-DVS event files events_np/<class name>/*.npz "
                       "(10 class folders), in it or without the events_np level")
#: CIFAR10-DVS's sensor; the reference resizes its frames to the model's 64×64.
_CIFAR10_DVS_SENSOR = (128, 128)


def _event_root(name, data_dir, time_steps, layout):
    """The event folder of an event dataset (``data_dir`` or its ``events_np``)."""
    if time_steps is None:
        raise UserError(f"{name} is framed into the model's time steps: give time_steps")
    if data_dir is None:
        raise UserError(f"{name} needs --data-dir pointing to {layout}; nothing is downloaded")
    root = Path(data_dir)
    if (root / "events_np").is_dir():
        root = root / "events_np"
    if not root.is_dir():
        raise UserError(f"{name} folder {str(root)!r} does not exist; expected {layout}")
    return root


def _load_cifar10_dvs(split, data_dir, time_steps):
    import math

    import torch

    from .events import frame_events, read_events

    root = _event_root("cifar10-dvs", data_dir, time_steps, _CIFAR10_DVS_LAYOUT)
    classes = sorted(d for d in root.iterdir() if d.is_dir())
    if len(classes) != 10:
        raise UserError(f"{str(root)!r} has {len(classes)} class folders, not 10; expected "
                        + _CIFAR10_DVS_LAYOUT)
    files = []
    for label, folder in enumerate(classes):
        names = sorted(folder.glob("*.npz"))
        cut = math.ceil(len(names) * 0.9)  # the reference's split_to_train_test_set(0.9, …)
        files += [(label, f) for f in (names[:cut] if split == "train" else names[cut:])]
    if not files:
        raise UserError(f"no {split} event files under {str(root)!r}; expected "
                        + _CIFAR10_DVS_LAYOUT)
    size = DATASET_INFO["cifar10-dvs"].size
    frames = np.empty((len(files), time_steps, 2, *size), np.float32)
    for i, (_, path) in enumerate(files):
        counts = frame_events(read_events(path), time_steps, _CIFAR10_DVS_SENSOR)
        frames[i] = torch.nn.functional.interpolate(
            torch.from_numpy(counts.astype(np.float32)), size=size, mode="bilinear",
            align_corners=False, antialias=True).numpy()
    return frames, np.array([label for label, _ in files], np.int64)


def _load_dvs_gesture(split, data_dir, time_steps):
    from .events import frame_events, read_events

    root = _event_root("dvs-gesture", data_dir, time_steps, _GESTURE_LAYOUT)
    folder = root / split
    if not folder.is_dir():
        raise UserError(f"DVS128 Gesture folder {str(folder)!r} does not exist; expected "
                        + _GESTURE_LAYOUT)
    labels = [d for d in folder.iterdir() if d.is_dir()]
    for label_dir in labels:
        if not label_dir.name.isdigit() or int(label_dir.name) > 10:
            raise UserError(f"DVS128 Gesture label folder {str(label_dir)!r} is not a "
                            f"label 0..10; expected " + _GESTURE_LAYOUT)
    files = [(int(d.name), f) for d in sorted(labels, key=lambda d: int(d.name))
             for f in sorted(d.glob("*.npz"))]
    if not files:
        raise UserError(f"no event files under {str(folder)!r}; expected " + _GESTURE_LAYOUT)
    size = DATASET_INFO["dvs-gesture"].size
    frames = np.empty((len(files), time_steps, 2, *size), np.int16)
    for i, (_, path) in enumerate(files):
        counts = frame_events(read_events(path), time_steps, size, split_by="number")
        frames[i] = np.minimum(counts, np.iinfo(np.int16).max)
    return frames, np.array([label for label, _ in files], np.int64)


def _read_cifar_batch(path, what="CIFAR-10", label_key=b"labels", classes=10):
    if not path.is_file():
        raise UserError(f"{what} batch {str(path)!r} is missing; expected " + _CIFAR_LAYOUT)
    try:
        with open(path, "rb") as f:
            # The CIFAR batches are pickles by format; only the user's own local copy is read.
            batch = pickle.load(f, encoding="bytes")
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except Exception as exc:
        raise UserError(f"{what} batch {str(path)!r} is not a {what} python batch (a pickled "
                        f"dict with b'data' uint8 [N, 3072] and {label_key!r}): {exc}") from None
    if (data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072
            or labels.shape != (data.shape[0],) or labels.min(initial=0) < 0
            or labels.max(initial=0) >= classes):
        raise UserError(f"{what} batch {str(path)!r} is malformed: expected b'data' uint8 "
                        f"[N, 3072] and N {label_key!r} in 0..{classes - 1}, got data "
                        f"{data.dtype} {list(data.shape)} and {labels.shape[0]} labels")
    return data.reshape(-1, 3, 32, 32), labels
