"""Datasets: the fixed digits split, CIFAR-10 batches read from synthetic pickles, clear errors."""

import pickle

import numpy as np
import pytest

from sdtforge.errors import UserError
from sdtforge.model.data import load_dataset


def test_digits_split():
    x_tr, y_tr = load_dataset("digits", "train")
    x_te, y_te = load_dataset("digits", "test")
    assert x_tr.shape == (1437, 1, 8, 8) and x_te.shape == (360, 1, 8, 8)
    assert x_tr.dtype == np.uint8 and y_tr.dtype == np.int64
    assert x_tr.max() == 255 and set(np.unique(x_te)) <= {round(v * 255 / 16) for v in range(17)}
    assert np.bincount(y_te).min() >= 35  # stratified
    x2, _ = load_dataset("digits", "test")
    assert np.array_equal(x_te, x2)


def _write_batches(folder, n=4, data=None, labels=None):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8) if data is None
                 else data, b"labels": list(range(n)) if labels is None else labels,
                 b"batch_label": name.encode()}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)


@pytest.mark.parametrize("sub", ["", "cifar-10-batches-py"])
def test_cifar10_reads_python_batches(tmp_path, sub):
    _write_batches(tmp_path / sub if sub else tmp_path)
    x, y = load_dataset("cifar10", "train", tmp_path)
    assert x.shape == (20, 3, 32, 32) and x.dtype == np.uint8
    assert y.tolist() == [0, 1, 2, 3] * 5
    xt, yt = load_dataset("cifar10", "test", tmp_path)
    assert xt.shape == (4, 3, 32, 32) and yt.dtype == np.int64
    # Row layout: 1024 red, 1024 green, 1024 blue values, each row-major 32×32.
    with open((tmp_path / sub if sub else tmp_path) / "test_batch", "rb") as f:
        raw = pickle.load(f, encoding="bytes")[b"data"]
    assert xt[1, 2, 3, 4] == raw[1, 2 * 1024 + 3 * 32 + 4]


def test_cifar10_errors(tmp_path):
    with pytest.raises(UserError, match="--data-dir"):
        load_dataset("cifar10", "test")
    with pytest.raises(UserError, match="does not exist"):
        load_dataset("cifar10", "test", tmp_path / "missing")
    with pytest.raises(UserError, match="test_batch.*missing"):
        load_dataset("cifar10", "test", tmp_path)
    (tmp_path / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="not a CIFAR-10 python batch"):
        load_dataset("cifar10", "test", tmp_path)
    _write_batches(tmp_path, data=np.zeros((4, 100), np.uint8))
    with pytest.raises(UserError, match="malformed"):
        load_dataset("cifar10", "test", tmp_path)


def test_unknown_names():
    with pytest.raises(UserError, match="unknown dataset"):
        load_dataset("mnist", "train")
    with pytest.raises(UserError, match="unknown split"):
        load_dataset("digits", "val")


def _write_cifar100(folder, n=6):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for name in ("train", "test"):
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"fine_labels": [99 - i for i in range(n)], b"coarse_labels": [0] * n}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)


@pytest.mark.parametrize("sub", ["", "cifar-100-python"])
def test_cifar100_reads_the_fine_labels(tmp_path, sub):
    _write_cifar100(tmp_path / sub if sub else tmp_path)
    x, y = load_dataset("cifar100", "test", tmp_path)
    assert x.shape == (6, 3, 32, 32) and x.dtype == np.uint8
    assert y.tolist() == [99, 98, 97, 96, 95, 94]


def test_cifar100_errors(tmp_path):
    with pytest.raises(UserError, match="cifar100 needs --data-dir"):
        load_dataset("cifar100", "test")
    with pytest.raises(UserError, match="CIFAR-100 file .*test.* is missing"):
        load_dataset("cifar100", "test", tmp_path)
    _write_cifar100(tmp_path)
    with open(tmp_path / "test", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0, 100]}, f)
    with pytest.raises(UserError, match=r"malformed.*0\.\.99"):
        load_dataset("cifar100", "test", tmp_path)


@pytest.mark.parametrize("name", ["imagenet"])
def test_known_datasets_without_a_reader_say_so(name):
    with pytest.raises(UserError, match=f"no reader for the {name} dataset"):
        load_dataset(name, "test")


def _write_gesture(root, per_label=2, seed=0):
    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        for label in (0, 3, 10):
            folder = root / "events_np" / split / str(label)
            folder.mkdir(parents=True)
            for i in range(per_label):
                n = 50 + 10 * i + label
                np.savez(folder / f"user{i:02d}_{label}.npz", x=rng.integers(0, 128, n),
                         y=rng.integers(0, 128, n), t=np.sort(rng.integers(0, 10**6, n)),
                         p=rng.integers(0, 2, n))


def test_dvs_gesture_reads_spikingjellys_event_files(tmp_path):
    from sdtforge.model.events import frame_events, read_events

    _write_gesture(tmp_path)
    x, y = load_dataset("dvs-gesture", "test", tmp_path, time_steps=4)
    assert x.shape == (6, 4, 2, 128, 128) and x.dtype == np.int16
    assert y.tolist() == [0, 0, 3, 3, 10, 10]
    first = tmp_path / "events_np" / "test" / "0" / "user00_0.npz"
    assert np.array_equal(x[0], frame_events(read_events(first), 4, (128, 128)))
    assert x[5].sum() == 60 + 10  # every event counted once
    # without the events_np level too
    x2, _ = load_dataset("dvs-gesture", "test", tmp_path / "events_np", time_steps=4)
    assert np.array_equal(x, x2)


def test_dvs_gesture_errors(tmp_path):
    with pytest.raises(UserError, match="time steps"):
        load_dataset("dvs-gesture", "test", tmp_path)
    with pytest.raises(UserError, match="needs --data-dir"):
        load_dataset("dvs-gesture", "test", time_steps=4)
    with pytest.raises(UserError, match="does not exist"):
        load_dataset("dvs-gesture", "test", tmp_path, time_steps=4)
    (tmp_path / "test" / "eleven").mkdir(parents=True)
    with pytest.raises(UserError, match="not a label 0..10"):
        load_dataset("dvs-gesture", "test", tmp_path, time_steps=4)
    (tmp_path / "test" / "eleven").rmdir()
    with pytest.raises(UserError, match="no event files"):
        load_dataset("dvs-gesture", "test", tmp_path, time_steps=4)


_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
            "truck")


def test_cifar10_dvs_frames_resizes_and_splits_as_the_reference(tmp_path):
    import torch

    from sdtforge.model.events import frame_events, read_events

    rng = np.random.default_rng(2)
    for name in _CLASSES:
        folder = tmp_path / "events_np" / name
        folder.mkdir(parents=True)
        for i in range(11):  # ceil(0.9 · 11) = 10 train, 1 test per class
            n = 400
            np.savez(folder / f"cifar10_{name}_{i}.npz", x=rng.integers(0, 128, n),
                     y=rng.integers(0, 128, n), t=np.sort(rng.integers(0, 10**6, n)),
                     p=rng.integers(0, 2, n))
    x, y = load_dataset("cifar10-dvs", "test", tmp_path, time_steps=3)
    assert x.shape == (10, 3, 2, 64, 64) and x.dtype == np.float32
    assert y.tolist() == list(range(10))
    last = tmp_path / "events_np" / "airplane" / "cifar10_airplane_9.npz"  # "…_9" sorts last
    counts = torch.from_numpy(frame_events(read_events(last), 3, (128, 128)).astype(np.float32))
    expected = torch.nn.functional.interpolate(counts, size=(64, 64), mode="bilinear",
                                               align_corners=False, antialias=True)
    assert np.array_equal(x[0], expected.numpy())
    # antialiased 2× down-sampling averages 2×2 areas: a quarter of the events' count
    assert abs(float(x[0].sum()) - 400 / 4) < 0.1
    xt, yt = load_dataset("cifar10-dvs", "train", tmp_path, time_steps=3)
    assert xt.shape[0] == 100 and np.bincount(yt).tolist() == [10] * 10


def test_cifar10_dvs_errors(tmp_path):
    with pytest.raises(UserError, match="cifar10-dvs needs --data-dir"):
        load_dataset("cifar10-dvs", "test", time_steps=4)
    (tmp_path / "airplane").mkdir()
    with pytest.raises(UserError, match="1 class folders, not 10"):
        load_dataset("cifar10-dvs", "test", tmp_path, time_steps=4)
