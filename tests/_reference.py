"""Reference-code stand-ins for the model tests: a state_dict spelled the reference's way, and a
transcription of the reference's forward pass.

:func:`reference_forward` follows ``model/spikeformer.py``, ``module/sps.py`` and
``module/ms_conv.py`` of BICLab/Spike-Driven-Transformer step by step in *its* tensor layout
(the head split ``[T, B, heads, N, D/heads]``, ``nn.MaxPool3d((1, 3, 3), 1, (0, 1, 1))`` as its
DVS ``Erode``, spikingjelly's multi-step LIF with hard reset to 0), reading only a state_dict, so
it shares no code with :mod:`sdtforge.model.sdt`.
"""

import torch
import torch.nn.functional as F
from torch import nn


def reference_state_dict(cfg, seed=0, gain=None):
    """A state_dict spelled key by key the way the reference code names its modules.

    Conv weights have std 0.1, or ``gain / sqrt(fan_in)`` where ``gain`` is given (deep enough
    models then still spike in every layer)."""
    g = torch.Generator().manual_seed(seed)
    d, c, hid = cfg.embed_dims, cfg.in_channels, cfg.mlp_ratio * cfg.embed_dims
    sd = {}

    def conv(name, cout, cin, k, bias):
        std = 0.1 if gain is None else gain / (cin * k * k) ** 0.5
        sd[f"{name}.weight"] = torch.randn(cout, cin, k, k, generator=g) * std
        if bias:
            sd[f"{name}.bias"] = torch.randn(cout, generator=g) * 0.1

    def bn(name, n):
        sd[f"{name}.weight"] = 1 + 0.1 * torch.randn(n, generator=g)
        sd[f"{name}.bias"] = 0.1 * torch.randn(n, generator=g)
        sd[f"{name}.running_mean"] = 0.1 * torch.randn(n, generator=g)
        sd[f"{name}.running_var"] = 1 + torch.rand(n, generator=g)
        sd[f"{name}.num_batches_tracked"] = torch.tensor(100)

    widths = [c, d // 8, d // 4, d // 2, d]
    for i, sfx in enumerate(["", "1", "2", "3"]):
        conv(f"patch_embed.proj_conv{sfx}", widths[i + 1], widths[i], 3, False)
        bn(f"patch_embed.proj_bn{sfx}", widths[i + 1])
    conv("patch_embed.rpe_conv", d, d, 3, False)
    bn("patch_embed.rpe_bn", d)
    for j in range(cfg.depths):
        a = f"block.{j}.attn"
        for n in "qkv":
            conv(f"{a}.{n}_conv", d, d, 1, False)
            bn(f"{a}.{n}_bn", d)
        sd[f"{a}.talking_heads.weight"] = torch.randn(8, 8, 1, generator=g)  # unused
        conv(f"{a}.proj_conv", d, d, 1, True)
        bn(f"{a}.proj_bn", d)
        m = f"block.{j}.mlp"
        conv(f"{m}.fc1_conv", hid, d, 1, True)
        bn(f"{m}.fc1_bn", hid)
        conv(f"{m}.fc2_conv", d, hid, 1, True)
        bn(f"{m}.fc2_bn", d)
    sd["head.weight"] = torch.randn(cfg.num_classes, d, generator=g) * 0.1
    sd["head.bias"] = torch.zeros(cfg.num_classes)
    return sd


def _lif(x, v_threshold=1.0, tau=2.0):
    # spikingjelly MultiStepLIFNode(tau=2., detach_reset=True): decay_input, v_reset = 0.
    v, out = torch.zeros_like(x[0]), []
    for t in range(x.shape[0]):
        v = v + (x[t] - (v - 0.0)) / tau
        s = (v - v_threshold >= 0).float()
        v = v * (1.0 - s) + 0.0 * s
        out.append(s)
    return torch.stack(out)


def _conv_bn(sd, conv, bn, x, padding):
    y = F.conv2d(x, sd[f"{conv}.weight"], sd.get(f"{conv}.bias"), 1, padding)
    return F.batch_norm(y, sd[f"{bn}.running_mean"], sd[f"{bn}.running_var"],
                        sd[f"{bn}.weight"], sd[f"{bn}.bias"], False, 0.0, 1e-5)


def reference_forward(sd, x, *, T, pooling_stat, heads, dvs):
    """The reference model's logits and its hooks' spikes, ``x`` as its loader gives it."""
    hook = {}
    x = x.transpose(0, 1).contiguous()  # [B, T, C, H, W] → [T, B, C, H, W]
    _, B, _, H, W = x.shape
    pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=False)
    ratio = 1
    pe = "patch_embed"
    x = x.flatten(0, 1)
    for i, sfx in enumerate(["", "1", "2"]):
        x = _conv_bn(sd, f"{pe}.proj_conv{sfx}", f"{pe}.proj_bn{sfx}", x, 1)
        x = _lif(x.reshape(T, B, -1, H // ratio, W // ratio).contiguous())
        x = x.flatten(0, 1).contiguous()
        if pooling_stat[i] == "1":
            x = pool(x)
            ratio *= 2
    x = _conv_bn(sd, f"{pe}.proj_conv3", f"{pe}.proj_bn3", x, 1)
    if pooling_stat[3] == "1":
        x = pool(x)
        ratio *= 2
    x_feat = x
    x = _lif(x.reshape(T, B, -1, H // ratio, W // ratio).contiguous())
    x = _conv_bn(sd, f"{pe}.rpe_conv", f"{pe}.rpe_bn", x.flatten(0, 1).contiguous(), 1)
    x = (x + x_feat).reshape(T, B, -1, H // ratio, W // ratio).contiguous()

    erode = nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 1, 1), padding=(0, 1, 1))
    depths = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("block."))
    for j in range(depths):
        a, m = f"block.{j}.attn", f"block.{j}.mlp"
        T_, B_, C, Hh, Ww = x.shape
        N = Hh * Ww
        identity = x
        x = _lif(x)
        xq = x.flatten(0, 1)

        def split(s, T_=T_, B_=B_, N=N, C=C):
            return (s.flatten(3).transpose(-1, -2).reshape(T_, B_, N, heads, C // heads)
                    .permute(0, 1, 3, 2, 4).contiguous())

        def conv_out(name, a=a, xq=xq, T_=T_, B_=B_, C=C, Hh=Hh, Ww=Ww):
            return _lif(_conv_bn(sd, f"{a}.{name}_conv", f"{a}.{name}_bn", xq, 0)
                        .reshape(T_, B_, C, Hh, Ww).contiguous())

        q = split(conv_out("q"))
        k_out = conv_out("k")
        hook[f"block{j}.attn.k"] = k_out  # before the erosion (the integer flow's input)
        if dvs:
            k_out = erode(k_out)
        k = split(k_out)
        v_out = conv_out("v")
        hook[f"block{j}.attn.v"] = v_out  # before the erosion (the integer flow's input)
        if dvs:
            v_out = erode(v_out)
        v = split(v_out)
        kv = k.mul(v)
        if dvs:
            kv = erode(kv)
        kv = kv.sum(dim=-2, keepdim=True)
        kv = _lif(kv, v_threshold=0.5)
        hook[f"block{j}.attn.mask"] = kv
        x = q.mul(kv)
        if dvs:
            x = erode(x)
        x = x.transpose(3, 4).reshape(T_, B_, C, Hh, Ww).contiguous()
        hook[f"block{j}.attn.out"] = x
        x = _conv_bn(sd, f"{a}.proj_conv", f"{a}.proj_bn", x.flatten(0, 1), 0)
        x = x.reshape(T_, B_, C, Hh, Ww).contiguous() + identity
        # MS_MLP_Conv
        identity = x
        h = _lif(x)
        h = _conv_bn(sd, f"{m}.fc1_conv", f"{m}.fc1_bn", h.flatten(0, 1), 0)
        h = _lif(h.reshape(T_, B_, -1, Hh, Ww).contiguous())
        h = _conv_bn(sd, f"{m}.fc2_conv", f"{m}.fc2_bn", h.flatten(0, 1), 0)
        x = h.reshape(T_, B_, C, Hh, Ww).contiguous() + identity
    x = _lif(x.flatten(3).mean(3))
    x = F.linear(x, sd["head.weight"], sd["head.bias"])
    return x.mean(0), hook
