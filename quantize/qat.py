"""Quantization-aware fine-tuning (straight-through estimator) for 4–6-bit weights.

The forward pass computes what the integer network computes, in real units, from one
:func:`sdtforge.quantize.quantizer.plan` (the quantizer's own scales, shifts and thresholds,
recomputed from the current parameters at every step):

- every conv and the head use the weight and bias the quantizer will store, times its scale
  (BN folded with its running statistics, rounded per channel; stream writers at
  ``s_r·2^k``; the head per tensor), mapped back to the unfolded parameters so that the
  unchanged float model computes with them;
- the input is normalized with the integer zero point (``zp/255``), so border padding and
  pixels contribute what ``W·(u − zp)`` contributes;
- every neuron with an integer counterpart fires at its integer threshold ``θ·s`` (not at
  ``V_th``) and floors its halved membrane to the integer grid ``s`` as ``(V + X) >> 1`` does.

Rounding and flooring pass gradients straight through. BN stays in eval mode: its statistics
are part of the fold and must not drift. The only remaining difference from the golden model is
float32 rounding, so the tuned model quantizes to the integers it was trained with (a test
checks the weights and the spikes).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from sdtforge.errors import UserError
from sdtforge.model.lif import spike_fn

from .quantizer import QuantRules, conv_bn_pairs, neuron_of, plan

__all__ = ["finetune", "fake_quant_params", "integer_forward", "integer_neurons"]

# (V + X) / (2u) is an exact integer or half-integer in exact arithmetic; float32 error is far
# below this margin, so the floor lands on the integer network's value.
_FLOOR_EPS = 1e-2


def _ste(x, q):
    """``q`` forward, gradient of ``x`` backward."""
    return x + (q - x).detach()


def _col(a, ndim):
    return torch.as_tensor(np.asarray(a, np.float64), dtype=torch.float32).view(
        -1, *([1] * (ndim - 1)))


def fake_quant_params(model, rules, p=None):
    """Parameter overrides ``{name: tensor}`` that make ``model`` compute with the integers.

    For each folded conv: ``weight = s·clamp(round(w'/s)) / g`` and
    ``bn.bias = β + (s·round(b'/s) − b')`` (``g = γ/σ``; pixel conv: ``w'`` includes
    ``1/(255·std)``), and the head's weight and bias at its per-tensor scale. Gradients pass
    straight through the rounding.
    """
    p = plan(model, rules) if p is None else p
    # An image model's first conv sees normalized pixels (folded as the plan folds them);
    # an event model's takes counts as they are.
    direct = model.config.encoding == "direct"
    std = torch.tensor(model.config.std, dtype=torch.float32).view(1, -1, 1, 1)
    names = {mod: name for name, mod in model.named_modules()}
    params = {}
    for name, conv, bn in conv_bn_pairs(model):
        g = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).view(-1, 1, 1, 1)
        w = conv.weight * g
        if name == "sps.conv0" and direct:
            w = w / (255.0 * std)
        s = _col(p["scale"][name], 4)
        wq = _ste(w, torch.round(w / s).clamp(-rules.qmax, rules.qmax) * s)
        if name == "sps.conv0" and direct:
            wq = wq * (255.0 * std)
        safe_g = torch.where(g.abs() < 1e-12, torch.full_like(g, 1e-12), g)
        params[names[conv] + ".weight"] = wq / safe_g
        b_f = torch.as_tensor(p["folded"][name][1], dtype=torch.float32)
        s1 = s.view(-1)
        bias_err = (torch.round(b_f / s1) * s1 - b_f).detach()
        params[names[bn] + ".bias"] = bn.bias + bias_err
    s_h = float(p["head_scale"])
    hw, hb = model.head.weight, model.head.bias
    params["head.weight"] = _ste(hw, torch.round(hw / s_h).clamp(-rules.qmax, rules.qmax) * s_h)
    params["head.bias"] = _ste(hb, torch.round(hb / s_h) * s_h)
    return params


def _integer_lif(x, unit, threshold, alpha):
    """The integer LIF in real units: ``H = u·floor((V + X)/(2u))``, fire ``H ≥ threshold``
    (``(θ − ½)·u``)."""
    v = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        h = v + (x[t] - v) / 2.0
        h = _ste(h, unit * torch.floor((v + x[t]) / (2.0 * unit) + _FLOOR_EPS))
        s = spike_fn(h - threshold, alpha)
        v = h * (1.0 - s.detach())
        out.append(s)
    return torch.stack(out)


@contextlib.contextmanager
def integer_neurons(model, p):
    """Within the block, ``model``'s neurons (and input zero point) behave as the integers of
    plan ``p``: integer threshold ``θ·s`` and membrane on the grid ``s``; normalization with
    ``zp/255``. Restores the model on exit."""
    mods = dict(model.named_modules())
    s_r = p["stream_scale"]
    units = {"stream": s_r, "head": s_r / p["tokens"]}
    saved_mean = model.mean
    patched = []
    try:
        for lif_name, key in neuron_of(model).values():
            unit = units.get(key)
            if unit is None:
                unit = p["scale"][key]
            theta = p["theta"]["stream" if key == "stream" else key]
            ndim = 1 if key == "head" else 3
            u = _col(unit, ndim)
            # H and θ are integers: H ≥ θ ⇔ H ≥ θ − ½; the half unit keeps float rounding of
            # u·H against u·θ from deciding ties (the integer neuron fires on equality)
            th = _col((theta - 0.5) * np.asarray(unit, np.float64), ndim)
            lif = mods[lif_name]

            def forward(x, u=u, th=th, alpha=lif.alpha):
                return _integer_lif(x, u, th, alpha)
            lif.forward = forward
            patched.append(lif)
        model.mean = tuple(float(z) / 255.0 for z in p["zero_point"])
        yield model
    finally:
        for lif in patched:
            del lif.forward
        model.mean = saved_mean


def integer_forward(model, x, weight_bits, return_spikes=False):
    """``model`` run as its integer network would be (fake-quantized weights and biases,
    integer neurons); same outputs as ``model(x, return_spikes)``."""
    rules = QuantRules(weight_bits)
    p = plan(model, rules)
    params = fake_quant_params(model, rules, p)
    with integer_neurons(model, p):
        return functional_call(model, params, (x,), {"return_spikes": return_spikes})


def finetune(model, ckpt, *, weight_bits, epochs, lr=1e-4, data_dir=None, seed=0,
             batch_size=32, progress=False):
    """Fine-tune a copy of ``model`` through its integer forward; returns the tuned model.

    The training split of the checkpoint's dataset is used with the checkpoint's random-shift
    augmentation (if any); BN statistics are frozen; the learning rate is cosine-annealed to 0.
    """
    from sdtforge.model import load_integer_inputs
    from sdtforge.model.training import random_shift, set_threads
    # small models only contend for a shared machine's cores with more than one thread
    set_threads(None, sum(t.numel() for t in model.parameters()))
    QuantRules(weight_bits)  # validate before loading data
    dataset = ckpt.get("dataset")
    if not isinstance(dataset, str):
        raise UserError("the checkpoint names no dataset; QAT needs its training split")
    # The training split as the integer model will be given it (event frames framed, saturated).
    images, labels = load_integer_inputs(dataset, "train", dataclasses.asdict(model.config),
                                         data_dir)
    shift = int((ckpt.get("train_settings") or {}).get("shift", 0) or 0)
    model = copy.deepcopy(model).eval()  # eval: BN uses (and keeps) running statistics
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    x_all = torch.from_numpy(np.ascontiguousarray(images))
    y_all = torch.from_numpy(np.asarray(labels, np.int64))
    steps = max(1, epochs * ((len(x_all) + batch_size - 1) // batch_size))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.5 * (1.0 + np.cos(np.pi * min(i, steps) / steps)))
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=steps, desc=f"QAT {weight_bits}-bit", unit="step", leave=False)
    for _ in range(epochs):
        order = torch.randperm(len(x_all), generator=gen)
        for start in range(0, len(x_all), batch_size):
            idx = order[start:start + batch_size]
            x = random_shift(x_all[idx], shift, gen)
            logits = integer_forward(model, x, weight_bits)
            loss = F.cross_entropy(logits, y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    model.eval()
    return model
