"""Datasets as uint8 pixels ``[N, C, H, W]`` (the accelerator's input format) and int64 labels.

``digits``
    scikit-learn's ``load_digits`` (1797 images, 8×8, 17 grey levels 0..16, mapped to uint8 by
    ``round(v * 255 / 16)``), split once and for all with
    ``train_test_split(test_size=0.2, random_state=0, stratify=labels)``: 1437 train, 360 test.
``cifar10``
    A local copy of the standard CIFAR-10 "python version" batches (``data_batch_1`` …
    ``data_batch_5``, ``test_batch``), in ``data_dir`` or ``data_dir/cifar-10-batches-py``;
    nothing is downloaded.
"""

import pickle
from pathlib import Path

import numpy as np

from sdtforge.errors import UserError

__all__ = ["DATASETS", "load_dataset"]

DATASETS = ("digits", "cifar10")
_SPLITS = ("train", "test")
_CIFAR_LAYOUT = ("the standard CIFAR-10 python batches data_batch_1 … data_batch_5 and "
                 "test_batch (from cifar-10-python.tar.gz), directly in it or in its "
                 "cifar-10-batches-py folder")


def load_dataset(name, split, data_dir=None):
    """Load one split of a dataset.

    Parameters
    ----------
    name : str
        ``"digits"`` or ``"cifar10"``.
    split : str
        ``"train"`` or ``"test"``.
    data_dir : str or Path, optional
        Folder of a local dataset copy (required for ``cifar10``; ignored for ``digits``).

    Returns
    -------
    images : numpy.ndarray
        uint8 ``[N, C, H, W]``.
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


def _load_cifar10(split, data_dir):
    if data_dir is None:
        raise UserError("cifar10 needs --data-dir pointing to a local copy of "
                        + _CIFAR_LAYOUT + "; nothing is downloaded")
    root = Path(data_dir)
    if not root.is_dir():
        raise UserError(f"CIFAR-10 data folder {str(root)!r} does not exist; expected "
                        + _CIFAR_LAYOUT)
    if not (root / "test_batch").exists() and (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    files = ([f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"])
    images, labels = [], []
    for fname in files:
        x, y = _read_cifar_batch(root / fname)
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


def _read_cifar_batch(path):
    if not path.is_file():
        raise UserError(f"CIFAR-10 batch {str(path)!r} is missing; expected " + _CIFAR_LAYOUT)
    try:
        with open(path, "rb") as f:
            # The CIFAR batches are pickles by format; only the user's own local copy is read.
            batch = pickle.load(f, encoding="bytes")
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except Exception as exc:
        raise UserError(f"CIFAR-10 batch {str(path)!r} is not a CIFAR-10 python batch (a pickled "
                        f"dict with b'data' uint8 [N, 3072] and b'labels'): {exc}") from None
    if (data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072
            or labels.shape != (data.shape[0],) or labels.min(initial=0) < 0
            or labels.max(initial=0) > 9):
        raise UserError(f"CIFAR-10 batch {str(path)!r} is malformed: expected b'data' uint8 "
                        f"[N, 3072] and N b'labels' in 0..9, got data {data.dtype} "
                        f"{list(data.shape)} and {labels.shape[0]} labels")
    return data.reshape(-1, 3, 32, 32), labels
