"""Training and evaluation loops for the float model (CPU, seeded, reproducible).

Training: AdamW, cosine learning-rate schedule (per step, to 0), label smoothing, and for the
8×8 digits a ±1 pixel random shift, because 1437 images are few for a transformer.
"""

import dataclasses
import math
import os
import time

import numpy as np
import torch
from torch import nn

from .checkpoint import save_checkpoint
from .data import load_dataset
from .presets import get_preset
from .sdt import SpikeDrivenTransformer

__all__ = ["TrainSettings", "train", "evaluate", "set_threads"]


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters of one training run (stored in the checkpoint as ``train_settings``).

    Parameters
    ----------
    epochs, batch_size : int
        Passes over the training split and images per step.
    lr, weight_decay, label_smoothing : float
        AdamW peak learning rate (cosine-annealed to 0), weight decay, label smoothing.
    shift : int
        Maximum random translation in pixels (0 = no augmentation).
    """

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    label_smoothing: float
    shift: int = 0


def set_threads(threads=None, num_parameters=None):
    """Use ``threads`` intra-op threads.

    The default is 1 for models under a million parameters (their ops are too small to gain
    from threads, and on a shared 2-core machine extra threads only contend), else the CPUs
    this process may use, at most 4.
    """
    if threads is None and num_parameters is not None and num_parameters < 1_000_000:
        threads = 1
    if threads is None:
        try:
            threads = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            threads = os.cpu_count() or 1
        threads = min(threads, 4)  # small models gain nothing from more
    torch.set_num_threads(max(1, int(threads)))


def _random_shift(x, shift, gen):
    """Translate each sample (an image, or all event frames of one sample alike) by up to
    ``shift`` pixels, filling with zeros."""
    if shift == 0:
        return x
    b, (h, w) = x.shape[0], x.shape[-2:]
    padded = nn.functional.pad(x, (shift, shift, shift, shift))
    dy = torch.randint(0, 2 * shift + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * shift + 1, (b,), generator=gen)
    return torch.stack([padded[i, ..., dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])


@torch.no_grad()
def evaluate(model, images, labels, batch_size=256, firing_rates=False):
    """Accuracy of ``model`` on uint8 ``images`` and int ``labels`` (NumPy or torch).

    Returns ``accuracy`` or, with ``firing_rates=True``, ``(accuracy, rates)`` where ``rates``
    maps every spike-recording name to its mean firing rate over the whole split.
    """
    model.eval()
    if model.config.encoding == "events":
        batch_size = min(batch_size, 8)  # T frames per sample: keep the activations small
    images = torch.as_tensor(np.asarray(images))
    labels = torch.as_tensor(np.asarray(labels))
    correct, sums, counts = 0, {}, {}
    for start in range(0, len(images), batch_size):
        xb = images[start:start + batch_size]
        if firing_rates:
            logits, spikes = model(xb, return_spikes=True)
            for name, s in spikes.items():
                sums[name] = sums.get(name, 0.0) + float(s.sum())
                counts[name] = counts.get(name, 0) + s.numel()
        else:
            logits = model(xb)
        correct += int((logits.argmax(1) == labels[start:start + batch_size]).sum())
    acc = correct / max(1, len(images))
    if firing_rates:
        return acc, {name: sums[name] / counts[name] for name in sums}
    return acc


def train(preset, out=None, *, epochs=None, seed=0, data_dir=None, threads=None,
          progress=True):
    """Train a preset from scratch and optionally write its checkpoint.

    Parameters
    ----------
    preset : str
        Preset name (:data:`sdtforge.model.PRESETS`).
    out : str or Path, optional
        Checkpoint file to write (``sdtforge-checkpoint/1``); nothing is written if None.
    epochs : int, optional
        Override the preset's epoch count.
    seed : int
        Seeds weight initialization, shuffling and augmentation; same seed, same threads →
        same checkpoint.
    data_dir : str or Path, optional
        Local dataset copy (CIFAR-10).
    threads : int, optional
        Torch intra-op threads (see :func:`set_threads`).
    progress : bool
        Show a tqdm progress bar (on a terminal).

    Returns
    -------
    model : SpikeDrivenTransformer
        Trained, in eval mode.
    metrics : dict
        ``test_accuracy``, ``train_accuracy``, ``epochs``, ``seconds``.
    """
    from tqdm import tqdm

    p = get_preset(preset)
    settings = TrainSettings(
        epochs=p.epochs if epochs is None else int(epochs), batch_size=p.batch_size, lr=p.lr,
        weight_decay=p.weight_decay, label_smoothing=p.label_smoothing,
        shift=1 if p.dataset == "digits" else 0)
    x_train, y_train = load_dataset(p.dataset, "train", data_dir, time_steps=p.config.T)
    x_test, y_test = load_dataset(p.dataset, "test", data_dir, time_steps=p.config.T)
    set_threads(threads, p.config.num_parameters)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = SpikeDrivenTransformer(p.config)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr,
                            weight_decay=settings.weight_decay)
    steps_per_epoch = math.ceil(len(x_train) / settings.batch_size)
    total = max(1, settings.epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total)))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)

    start = time.perf_counter()
    bar = tqdm(range(settings.epochs), desc=f"train {preset}", unit="epoch",
               disable=None if progress else True)
    for _ in bar:
        model.train()
        order = torch.randperm(len(xt), generator=gen)
        run_loss, run_correct = 0.0, 0
        for i in range(0, len(xt), settings.batch_size):
            idx = order[i:i + settings.batch_size]
            xb = _random_shift(xt[idx], settings.shift, gen)
            logits = model(xb)
            loss = loss_fn(logits, yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            run_loss += float(loss.detach()) * len(idx)
            run_correct += int((logits.argmax(1) == yt[idx]).sum())
        bar.set_postfix(loss=f"{run_loss / len(xt):.3f}", acc=f"{run_correct / len(xt):.3f}")
    seconds = time.perf_counter() - start
    metrics = {
        "test_accuracy": evaluate(model, x_test, y_test),
        "train_accuracy": evaluate(model, x_train, y_train),
        "epochs": settings.epochs,
        "seconds": round(seconds, 1),
    }
    if out is not None:
        save_checkpoint(out, model, preset=preset, dataset=p.dataset, seed=seed,
                        train_settings=dataclasses.asdict(settings), metrics=metrics)
    return model, metrics
