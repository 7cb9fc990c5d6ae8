"""Quantization-aware fine-tuning with a straight-through estimator (for 4–6-bit weights).

The forward pass uses, for every conv and the head, the weight the integer quantizer will
produce (BN folded with its running statistics, rounded at the scale of the same rules —
per channel, stream writers at ``s_r·2^k``, head per tensor), mapped back to the unfolded
parameter so the unchanged float model computes with it; gradients pass straight through the
rounding. BN stays in eval mode: its statistics are part of the fold and must not drift.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from spikeforge.errors import UserError

from .quantizer import QuantRules

__all__ = ["finetune", "fake_quant_params"]


def _bn_gain(bn):
    return bn.weight / torch.sqrt(bn.running_var + bn.eps)


def _pairs(model):
    """``(writer name, conv param name, conv, bn)`` in the IR's naming."""
    pe = model.patch_embed
    out = [("sps.conv0", "patch_embed.proj_conv", pe.proj_conv, pe.proj_bn),
           ("sps.conv1", "patch_embed.proj_conv1", pe.proj_conv1, pe.proj_bn1),
           ("sps.conv2", "patch_embed.proj_conv2", pe.proj_conv2, pe.proj_bn2),
           ("sps.conv3", "patch_embed.proj_conv3", pe.proj_conv3, pe.proj_bn3),
           ("sps.rpe", "patch_embed.rpe_conv", pe.rpe_conv, pe.rpe_bn)]
    for i, blk in enumerate(model.block):
        a, m = blk.attn, blk.mlp
        for x in "qkv":
            out.append((f"block{i}.attn.{x}", f"block.{i}.attn.{x}_conv",
                        getattr(a, f"{x}_conv"), getattr(a, f"{x}_bn")))
        out.append((f"block{i}.attn.proj", f"block.{i}.attn.proj_conv", a.proj_conv, a.proj_bn))
        out.append((f"block{i}.mlp.fc1", f"block.{i}.mlp.fc1_conv", m.fc1_conv, m.fc1_bn))
        out.append((f"block{i}.mlp.fc2", f"block.{i}.mlp.fc2_conv", m.fc2_conv, m.fc2_bn))
    return out


def _ste_round(x):
    return x + (torch.round(x) - x).detach()


def fake_quant_params(model, rules):
    """Parameter overrides ``{name: tensor}`` holding fake-quantized weights (STE)."""
    std = torch.tensor(model.config.std, dtype=torch.float32).view(1, -1, 1, 1)
    pairs = _pairs(model)
    folded = {}
    for name, _pname, conv, bn in pairs:
        g = _bn_gain(bn).view(-1, 1, 1, 1)
        w = conv.weight * g
        if name == "sps.conv0":
            w = w / (255.0 * std)
        folded[name] = (w, g)
    with torch.no_grad():
        def nat(w):
            m = w.detach().abs().flatten(1).amax(1).double().numpy()
            return np.where(m > 0, m / rules.qmax, 1.0 / rules.qmax)

        writers = [n for n, *_ in pairs if n.startswith("sps.conv3") or n == "sps.rpe"
                   or n.endswith((".proj", ".fc2"))]
        s_r = np.min([nat(folded[n][0]) for n in writers], axis=0)
    params = {}
    for name, pname, _, _ in pairs:
        w, g = folded[name]
        if name in writers:
            m = w.detach().abs().flatten(1).amax(1).double().numpy()
            k = rules.stream_shift(m.reshape(-1, 1), s_r)
            s = s_r * np.exp2(k)
        else:
            s = nat(w)
        s = torch.tensor(s, dtype=torch.float32).view(-1, 1, 1, 1)
        wq = _ste_round(w / s).clamp(-rules.qmax, rules.qmax) * s
        if name == "sps.conv0":
            wq = wq * (255.0 * std)
        safe_g = torch.where(g.abs() < 1e-12, torch.full_like(g, 1e-12), g)
        params[pname + ".weight"] = wq / safe_g
    hw = model.head.weight
    s_h = hw.detach().abs().max().clamp_min(1e-12) / rules.qmax
    params["head.weight"] = _ste_round(hw / s_h).clamp(-rules.qmax, rules.qmax) * s_h
    return params


def finetune(model, ckpt, *, weight_bits, epochs, lr=1e-4, data_dir=None, seed=0,
             batch_size=32, progress=False):
    """Fine-tune a copy of ``model`` with fake-quantized weights; returns the tuned model.

    The training split of the checkpoint's dataset is used without augmentation; BN
    statistics are frozen.
    """
    from spikeforge.model import load_dataset
    rules = QuantRules(weight_bits)
    dataset = ckpt.get("dataset")
    if not isinstance(dataset, str):
        raise UserError("the checkpoint names no dataset; QAT needs its training split")
    images, labels = load_dataset(dataset, "train", data_dir=data_dir)
    model = copy.deepcopy(model).eval()  # eval: BN uses (and keeps) running statistics
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    x_all = torch.from_numpy(np.ascontiguousarray(images))
    y_all = torch.from_numpy(np.asarray(labels, np.int64))
    steps = epochs * ((len(x_all) + batch_size - 1) // batch_size)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=steps, desc=f"QAT {weight_bits}-bit", unit="step", leave=False)
    for _ in range(epochs):
        order = torch.randperm(len(x_all), generator=gen)
        for start in range(0, len(x_all), batch_size):
            idx = order[start:start + batch_size]
            x, y = x_all[idx], y_all[idx]
            params = fake_quant_params(model, rules)
            logits = functional_call(model, params, (x,))
            loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    model.eval()
    return model
