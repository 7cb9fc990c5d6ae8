"""Float vs integer comparison: accuracies and per-layer spike agreement (torch on use only)."""

from __future__ import annotations

import numpy as np

__all__ = ["compare"]


def compare(float_model, int_model, ckpt, data_dir=None, limit=None, batch_size=256,
            progress=False):
    """Accuracy of both models on the test split and the fraction of equal spikes per layer.

    ``float_model`` is the (eval-mode) PyTorch model the integers came from; the float model
    is imported lazily so that importing this module does not pull torch in.
    """
    import torch

    from spikeforge.model import load_dataset
    from spikeforge.sim import golden

    images, labels = load_dataset(ckpt.get("dataset") or "digits", "test", data_dir=data_dir)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    equal, total = {}, {}
    f_correct = i_correct = 0
    starts = range(0, len(images), batch_size)
    if progress:
        from tqdm import tqdm
        starts = tqdm(starts, desc="float vs integer", unit="batch", leave=False)
    for start in starts:
        x = images[start:start + batch_size]
        y = labels[start:start + batch_size]
        with torch.no_grad():
            logits, spikes = float_model(torch.from_numpy(x), return_spikes=True)
        res = golden.run(int_model, x, spikes=True)
        f_correct += int((logits.argmax(1).numpy() == y).sum())
        i_correct += int((res.classes == y).sum())
        for name, s in spikes.items():
            if name not in res.spikes:
                continue
            a = s.numpy().astype(np.uint8)
            equal[name] = equal.get(name, 0) + int((a == res.spikes[name]).sum())
            total[name] = total.get(name, 0) + a.size
    n = max(len(images), 1)
    return {
        "images": len(images),
        "float_accuracy": f_correct / n,
        "integer_accuracy": i_correct / n,
        "spike_agreement": {k: equal[k] / total[k] for k in equal},
    }
