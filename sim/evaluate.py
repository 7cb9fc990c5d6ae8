"""``sdtforge eval MODEL.sfm``: golden-model accuracy, operation counts and energy."""

from __future__ import annotations

import json

import numpy as np

from sdtforge.errors import UserError
from sdtforge.quantize import ir

from . import energy as _energy
from . import golden

#: Random inputs a synthetic model is evaluated on without ``--limit``.
SYNTHETIC_IMAGES = 10

__all__ = ["eval_command", "evaluate", "run_batched"]


def run_batched(model, images, batch_size=256, progress=False, spikes=False):
    """:func:`golden.run` over ``images`` in batches; returns ``(classes, logits, counts)``
    with ``counts`` per layer totals over all images."""
    classes, logits, counts = [], [], {}
    starts = range(0, len(images), batch_size)
    if progress:
        from tqdm import tqdm
        starts = tqdm(starts, desc="golden", unit="batch", leave=False)
    for start in starts:
        res = golden.run(model, images[start:start + batch_size], spikes=spikes)
        classes.append(res.classes)
        logits.append(res.logits)
        for name, c in res.counts.items():
            tot = counts.setdefault(name, dict.fromkeys(golden.COUNT_KEYS, 0))
            for k, v in c.items():
                tot[k] += v
    return np.concatenate(classes), np.concatenate(logits), counts


def evaluate(model, images, labels, batch_size=256, progress=False):
    """Accuracy, per-image counts and energy of the integer ``model`` on a labelled set."""
    classes, _, counts = run_batched(model, images, batch_size, progress)
    n = max(len(images), 1)
    per_image = {name: {k: v / n for k, v in c.items()} for name, c in counts.items()}
    totals = {k: sum(c[k] for c in per_image.values()) for k in golden.COUNT_KEYS}
    return {
        "accuracy": float((classes == np.asarray(labels)).mean()) if len(images) else None,
        "images": len(images),
        "counts_per_image": totals,
        "layers_per_image": per_image,
        "energy": _energy.energy(per_image),
        "energy_with_memory": _energy.memory_energy(model, per_image),
        "sdsa": _energy.sdsa_ratio_from_counts(model, per_image),
    }


def eval_command(args):
    """Run ``sdtforge eval`` on an ``.sfm`` file (``args.path``, ``--json``, ``--data-dir``,
    ``--limit``); prints a table or JSON; returns the exit code."""
    path = getattr(args, "path", None) or getattr(args, "checkpoint", None)
    model = ir.load(path)
    dataset = model.provenance.get("dataset") or "digits"
    limit = getattr(args, "limit", None)
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be positive, not {limit}")
    synthetic = model.provenance.get("synthetic")
    if synthetic is not None:
        # Random weights (``sdtforge synth``): the counts and energy on the random inputs the
        # firing rate was tuned on; there is no accuracy to report.
        from .latency import sample_images

        images = sample_images(model, limit or SYNTHETIC_IMAGES)
        labels = np.zeros(len(images), np.int64)
    else:
        from sdtforge.model import load_integer_inputs  # dataset readers need no torch
        images, labels = load_integer_inputs(dataset, "test", model.config,
                                             getattr(args, "data_dir", None))
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
    as_json = getattr(args, "json", False)
    result = evaluate(model, images, labels, progress=not as_json)
    if synthetic is not None:
        result["accuracy"] = None
        dataset = f"random inputs (synthetic {synthetic.get('preset', dataset)} model)"
    result["model"] = str(path)
    result["dataset"] = dataset
    result["float_accuracy"] = model.provenance.get("float_accuracy")
    if as_json:
        result.pop("layers_per_image")
        result["energy_with_memory"].pop("per_layer_pj")
        print(json.dumps(result, indent=2, sort_keys=True))
        return 0
    c = result["counts_per_image"]
    source = dataset if synthetic is not None else f"{dataset} test"
    print(f"{path}: {source}, {result['images']} images")
    fa = result["float_accuracy"]
    if result["accuracy"] is None:
        print("  integer accuracy   none: random weights (sdtforge synth; a sizing aid)")
    else:
        print(f"  integer accuracy   {100 * result['accuracy']:.2f} %"
              + (f"   (float {100 * fa:.2f} %)" if fa is not None else ""))
    print(f"  per image          {c['acs']:.0f} ACs, {c['macs']:.0f} MACs, "
          f"{c['spikes']:.0f} spikes, {c['neuron_updates']:.0f} neuron updates")
    e = result["energy"]
    print(f"  energy (paper)     {e['total_uj']:.3f} µJ (MAC {e['mac_uj']:.3f}, "
          f"AC {e['ac_uj']:.3f}; compute only, the SDT paper's method)")
    m = result["energy_with_memory"]
    parts = ", ".join(f"{k} {v:.3g}" for k, v in m["by_memory_uj"].items() if v)
    print(f"  energy + memory    {m['total_uj']:.3f} µJ (memory {m['memory_uj']:.3f}: {parts}; "
          f"Horowitz 45 nm SRAM/DRAM per access)")
    for name, s in result["sdsa"].items():
        print(f"  {name:18s} K∧V rate {s['kv_rate']:.3f}; vs vanilla self-attention: operator "
              f"{s['ratio']:.1f}× less energy, module with Q/K/V {s['module_ratio']:.2f}×")
    return 0
