"""Training and evaluation loops for the float model (seeded, reproducible).

Training: AdamW, cosine learning-rate schedule (per optimizer step, to 0), label smoothing, and
for the 8×8 digits a ±1 pixel random shift, because 1437 images are few for a transformer.

Under ``torchrun`` (one process per device) the same loop runs as PyTorch DistributedDataParallel:
a ``DistributedSampler`` deals the samples (reshuffled per epoch from the seed), gradients are
averaged over the processes, the loss and accuracy are summed over them, and rank 0 alone shows
progress, evaluates and writes files. A plain run (no ``torchrun``) stays the single-process
loop it always was, so its checkpoints do not change (on the CPU; on a machine with CUDA a
plain run trains on the GPU, which is not bit-reproducible). ``docs/model.md`` has the commands.
"""

import dataclasses
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sdtforge.errors import UserError

from .augment import MIXUP_FRACTION, mixup, paper_images
from .checkpoint import save_checkpoint
from .data import load_dataset
from .presets import get_preset
from .sdt import SpikeDrivenTransformer

__all__ = ["TrainSettings", "train", "evaluate", "set_threads", "random_shift", "STATE_FORMAT",
           "PRECISIONS", "AUGMENTATIONS"]

#: Format tag of the training-state file ``--resume`` reads.
STATE_FORMAT = "sdtforge-train-state/1"
#: ``--augment`` choices (:class:`TrainSettings`).
AUGMENTATIONS = ("none", "paper")
#: ``--precision`` choices (the mixed ones are meant for GPUs; see :func:`_autocast`).
PRECISIONS = ("fp32", "bf16", "fp16")


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
        Maximum random translation in pixels (0 = none; the digits presets use 1).
    augment : str
        ``"none"``, or ``"paper"``: the reference's CIFAR recipe (flip, RandAugment, mixup over
        the first two thirds of the epochs; :mod:`sdtforge.model.augment`).
    accumulate : int
        Batches whose gradients are summed (each loss divided by it) before one optimizer
        step.
    clip_grad : float or None
        Largest global gradient norm (``clip_grad_norm_``), or no clipping.
    precision : str
        ``"fp32"``, or autocast in ``"bf16"`` or ``"fp16"`` (with a gradient scaler).
    world_size : int
        Processes training together (``torchrun``); ``batch_size`` is per process, so one
        optimizer step sees ``batch_size · accumulate · world_size`` samples.
    """

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    label_smoothing: float
    shift: int = 0
    augment: str = "none"
    accumulate: int = 1
    clip_grad: float = None
    precision: str = "fp32"
    world_size: int = 1

    @property
    def effective_batch_size(self):
        """Samples per optimizer step over all processes."""
        return self.batch_size * self.accumulate * self.world_size


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


def random_shift(x, shift, gen):
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


class _Dist:
    """This process's place in a ``torch.distributed`` group (``world == 1``: none)."""

    def __init__(self):
        import torch.distributed as dist

        self.active = dist.is_available() and dist.is_initialized()
        self.owned = False  # this object started the group (torchrun), so it ends it
        cuda = torch.cuda.is_available()
        if not self.active and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            # Started by torchrun: pick this process's GPU first, then join its group (NCCL
            # between GPUs, Gloo on CPUs).
            if cuda:
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("nccl" if cuda else "gloo")
            self.active = self.owned = True
        self.rank = dist.get_rank() if self.active else 0
        self.world = dist.get_world_size() if self.active else 1
        if cuda and self.active:
            local = int(os.environ.get("LOCAL_RANK", self.rank % torch.cuda.device_count()))
            torch.cuda.set_device(local)
            self.device = torch.device("cuda", local)
        elif cuda:
            self.device = torch.device("cuda")  # a plain run on a GPU machine trains there
        else:
            self.device = torch.device("cpu")

    def close(self, together=True):
        """End the group this object started (the caller's own group is left alone).

        ``together``: every process first waits for the others at a barrier, so that no
        process tears down its Gloo connections while a peer's group still uses them (without
        it, one process of a two-process run on CPUs now and then aborted at exit with
        "terminate called without an active exception"). After an error the processes may not
        all get here, so ``together=False`` ends the group without waiting.
        """
        if self.owned:
            import torch.distributed as dist

            if together:
                dist.barrier()
            dist.destroy_process_group()
            self.owned = self.active = False

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(together=exc_type is None)

    @property
    def main(self):
        return self.rank == 0

    def sums(self, *values):
        """``values`` summed over the processes."""
        if not self.active:
            return list(values)
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()


def _autocast(settings, device):
    """The forward pass's autocast context and the gradient scaler of ``settings.precision``.

    Mixed precision is for GPUs; it runs on the CPU too (torch's CPU autocast and gradient
    scaler), slower than fp32 there, which lets the tests exercise it on machines without one.
    """
    if settings.precision not in PRECISIONS:
        raise UserError(f"unknown precision {settings.precision!r}; use one of "
                        f"{', '.join(PRECISIONS)}")
    if settings.precision == "fp32":
        return nullcontext(), None
    dtype = torch.bfloat16 if settings.precision == "bf16" else torch.float16
    scaler = torch.amp.GradScaler(device.type) if settings.precision == "fp16" else None
    return torch.autocast(device.type, dtype=dtype), scaler


def _state(model, opt, sched, scaler, gen, settings, preset, seed, epoch):
    return {"format": STATE_FORMAT, "preset": preset, "seed": int(seed), "epoch": int(epoch),
            "settings": dataclasses.asdict(settings),
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": {"torch": torch.get_rng_state(), "generator": gen.get_state()}}


def _read_state(path, settings, preset, seed):
    """A training state written by an earlier run of the same preset, settings and seed."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"training state {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"training state {str(path)!r} cannot be read ({type(exc).__name__})"
                        ) from None
    keys = ("preset", "seed", "epoch", "settings", "model", "optimizer", "scheduler", "scaler",
            "rng")
    if (not isinstance(state, dict) or state.get("format") != STATE_FORMAT
            or any(k not in state for k in keys)):
        raise UserError(f"{str(path)!r} is not a training state ({STATE_FORMAT} with "
                        f"{', '.join(keys)}); resume from the train-state.pt a run writes "
                        f"beside its checkpoint")
    mine = {"preset": preset, "seed": int(seed), **dataclasses.asdict(settings)}
    # A setting added since the state was written had its default then.
    defaults = {f.name: f.default for f in dataclasses.fields(TrainSettings)
                if f.default is not dataclasses.MISSING}
    theirs = {"preset": state["preset"], "seed": state["seed"], **defaults, **state["settings"]}
    differ = [f"{k} {theirs.get(k)!r} (now {v!r})" for k, v in mine.items()
              if theirs.get(k) != v]
    if differ:
        raise UserError(f"training state {str(path)!r} is of another run: "
                        + ", ".join(differ))
    return state


def _fit(model, x_train, y_train, settings, *, seed, preset="", progress=False, dist=None,
         state_path=None, resume=None, freeze_bn=False, on_epoch_end=None):
    """Train ``model`` in place on ``x_train``/``y_train``; returns the trained module.

    ``state_path`` (rank 0) receives the training state after every epoch; ``resume`` is such a
    state to continue from. ``freeze_bn`` keeps batch-norm in eval mode (running statistics,
    no batch statistics), so that training on a batch split over processes is the same
    computation as on the whole batch. ``on_epoch_end(epoch)`` is called after each epoch.
    """
    from tqdm import tqdm

    dist = dist or _Dist()
    device = dist.device
    autocast, scaler = _autocast(settings, device)
    gen = torch.Generator().manual_seed(seed)
    model = model.to(device)
    net = model
    if dist.active:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                      else None)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr,
                            weight_decay=settings.weight_decay)
    n = len(x_train)
    sampler = None
    if dist.active:
        from torch.utils.data import DistributedSampler

        sampler = DistributedSampler(range(n), num_replicas=dist.world, rank=dist.rank,
                                     shuffle=True, seed=seed)
        n_local = len(sampler)
    else:
        n_local = n
    batches = math.ceil(n_local / settings.batch_size)
    steps_per_epoch = math.ceil(batches / settings.accumulate)
    total = max(1, settings.epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total)))
    first = 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        sched.load_state_dict(resume["scheduler"])
        if scaler is not None and resume["scaler"] is not None:
            scaler.load_state_dict(resume["scaler"])
        torch.set_rng_state(resume["rng"]["torch"])
        gen.set_state(resume["rng"]["generator"])
        first = resume["epoch"]
    loss_fn = nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
    paper = settings.augment == "paper"
    mixup_epochs = round(settings.epochs * MIXUP_FRACTION) if paper else 0
    xt, yt = torch.as_tensor(np.asarray(x_train)), torch.as_tensor(np.asarray(y_train))

    def step():
        if scaler is not None:
            scaler.unscale_(opt)
        if settings.clip_grad is not None:
            nn.utils.clip_grad_norm_(model.parameters(), settings.clip_grad)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()

    bar = tqdm(range(first, settings.epochs), desc=f"train {preset}".strip(), unit="epoch",
               disable=None if progress and dist.main else True)
    for epoch in bar:
        net.train()
        if freeze_bn:
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        if sampler is not None:
            sampler.set_epoch(epoch)
            order = torch.tensor(list(sampler))
            # Each process shifts its own samples, from a generator of this epoch and rank.
            gen.manual_seed(seed + 1_000_003 * (epoch + 1) + dist.rank)
        else:
            order = torch.randperm(n, generator=gen)
        run_loss, run_correct = 0.0, 0
        for b, i in enumerate(range(0, len(order), settings.batch_size)):
            idx = order[i:i + settings.batch_size]
            xb, yb, target = random_shift(xt[idx], settings.shift, gen), yt[idx], None
            if paper:
                xb = paper_images(xb, gen, model.config.mean)
            if epoch < mixup_epochs:
                xb, target = mixup(xb, yb, gen, model.config.num_classes,
                                   settings.label_smoothing)
            xb, yb = xb.to(device), yb.to(device)
            with autocast:
                logits = net(xb)
                # mixup's soft targets hold the label smoothing already
                loss = (loss_fn(logits.float(), yb) if target is None
                        else nn.functional.cross_entropy(logits.float(), target.to(device)))
            # The mean over the batches of one step (the epoch's last step may have fewer).
            group = min(settings.accumulate, batches - b // settings.accumulate
                        * settings.accumulate)
            scaled = loss / group if group > 1 else loss
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
            if (b + 1) % settings.accumulate == 0 or b + 1 == batches:
                step()
            run_loss += float(loss.detach()) * len(idx)
            run_correct += int((logits.argmax(1) == yb).sum())
        run_loss, run_correct, seen = dist.sums(run_loss, run_correct, len(order))
        bar.set_postfix(loss=f"{run_loss / seen:.3f}", acc=f"{run_correct / seen:.3f}")
        if state_path is not None and dist.main:
            # Written aside and renamed: an interruption while saving leaves the last state.
            part = Path(f"{state_path}.part")
            torch.save(_state(model, opt, sched, scaler, gen, settings, preset, seed,
                              epoch + 1), part)
            os.replace(part, state_path)
        if on_epoch_end is not None:
            on_epoch_end(epoch)
    return model


def train(preset, out=None, *, epochs=None, seed=0, data_dir=None, threads=None,
          progress=True, batch_size=None, accumulate=1, clip_grad=None, precision="fp32",
          augment="none", sync_bn=False, resume=None, on_epoch_end=None):
    """Train a preset from scratch (or from a saved training state) and write its checkpoint.

    Under ``torchrun`` every process calls this; rank 0 alone evaluates and writes.

    Parameters
    ----------
    preset : str
        Preset name (:data:`sdtforge.model.PRESETS`).
    out : str or Path, optional
        Checkpoint file to write (``sdtforge-checkpoint/1``); nothing is written if None. The
        training state (for ``resume``) goes beside it as ``train-state.pt`` after each epoch.
    epochs : int, optional
        Override the preset's epoch count.
    seed : int
        Seeds weight initialization, shuffling and augmentation; same seed, same threads and
        processes → same checkpoint.
    data_dir : str or Path, optional
        Local dataset copy (CIFAR, DVS).
    threads : int, optional
        Torch intra-op threads (see :func:`set_threads`).
    progress : bool
        Show a tqdm progress bar (on a terminal; rank 0 only).
    batch_size : int, optional
        Samples per batch *per process* (default: the preset's).
    accumulate : int
        Batches per optimizer step (gradient accumulation).
    clip_grad : float, optional
        Clip the global gradient norm to this.
    precision : str
        ``"fp32"``, ``"bf16"`` or ``"fp16"`` (the last two: autocast, for GPUs).
    augment : str
        ``"none"`` or ``"paper"`` (RGB image presets only; see :class:`TrainSettings`).
    sync_bn : bool
        Batch statistics over all processes (``SyncBatchNorm``; CUDA only), as the reference
        training offers.
    resume : str or Path, optional
        A ``train-state.pt`` of an interrupted run with the same preset, settings and seed:
        the run continues from its epoch to the same result as an uninterrupted one.
    on_epoch_end : callable, optional
        Called with the epoch index after each epoch.

    Returns
    -------
    model : SpikeDrivenTransformer
        Trained, in eval mode, on the CPU.
    metrics : dict
        ``test_accuracy``, ``train_accuracy``, ``epochs``, ``seconds``.
    """
    p = get_preset(preset)
    # The group ends with the training, every process together, before rank 0 evaluates.
    with _Dist() as dist:
        settings = TrainSettings(
            epochs=p.epochs if epochs is None else int(epochs),
            batch_size=p.batch_size if batch_size is None else int(batch_size), lr=p.lr,
            weight_decay=p.weight_decay, label_smoothing=p.label_smoothing,
            shift=1 if p.dataset == "digits" else 0, augment=augment, accumulate=int(accumulate),
            clip_grad=None if clip_grad is None else float(clip_grad), precision=precision,
            world_size=dist.world)
        if augment not in AUGMENTATIONS:
            raise UserError(f"unknown augmentation {augment!r}; "
                            f"use one of {', '.join(AUGMENTATIONS)}")
        if augment == "paper" and (p.config.encoding != "direct" or p.config.in_channels != 3):
            raise UserError(f"--augment paper is the reference's recipe for RGB images; preset "
                            f"{preset} takes {p.config.in_channels}-channel "
                            f"{'event frames' if p.config.encoding == 'events' else 'images'}")
        if settings.accumulate < 1:
            raise UserError(f"accumulate must be at least 1, not {settings.accumulate}")
        _autocast(settings, dist.device)  # refuse an unknown precision before loading data
        if sync_bn and dist.device.type != "cuda":
            raise UserError("--sync-bn needs CUDA (torch's SyncBatchNorm runs on GPUs); on CPUs "
                            "each process normalizes with its own batch statistics")
        state = _read_state(resume, settings, preset, seed) if resume is not None else None
        x_train, y_train = load_dataset(p.dataset, "train", data_dir, time_steps=p.config.T)
        if dist.main:  # rank 0 alone evaluates
            x_test, y_test = load_dataset(p.dataset, "test", data_dir, time_steps=p.config.T)
        set_threads(threads, p.config.num_parameters)
        torch.manual_seed(seed)
        model = SpikeDrivenTransformer(p.config)
        if sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        state_path = Path(out).with_name("train-state.pt") if out is not None else None
        if state_path is not None and dist.main:
            state_path.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        model = _fit(model, x_train, y_train, settings, seed=seed, preset=preset,
                     progress=progress, dist=dist, state_path=state_path, resume=state,
                     on_epoch_end=on_epoch_end)
        seconds = time.perf_counter() - start
    if sync_bn:
        model = _plain_batchnorm(model, p.config)
    model = model.cpu().eval()
    metrics = None
    if dist.main:
        metrics = {
            "test_accuracy": evaluate(model, x_test, y_test),
            "train_accuracy": evaluate(model, x_train, y_train),
            "epochs": settings.epochs,
            "seconds": round(seconds, 1),
        }
        if out is not None:
            save_checkpoint(out, model, preset=preset, dataset=p.dataset, seed=seed,
                            train_settings={**dataclasses.asdict(settings),
                                            "effective_batch_size":
                                                settings.effective_batch_size},
                            metrics=metrics)
    return model, metrics


def _plain_batchnorm(model, config):
    """The model with ``SyncBatchNorm`` layers back as plain ones (same state_dict)."""
    plain = SpikeDrivenTransformer(config)
    plain.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
    return plain
