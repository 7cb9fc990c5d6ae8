"""Spike-Driven Transformer v1 (Yao et al., NeurIPS 2023) as a float, trainable PyTorch model.

The structure follows DESIGN §2 exactly, and every module carries the name the reference code
gives it, so a reference ``state_dict`` loads with ``strict=True``. The model takes **uint8**
pixels ``[B, C, H, W]`` and normalizes them itself, so the float and integer models see the same
input; an event model (``encoding="events"``) takes event-count frames ``[B, T, C, H, W]``.
``model(x, return_spikes=True)`` also returns every spike tensor by name; those names are the
contract with the integer golden model (``docs/model.md``).
"""

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .config import SDTConfig
from .lif import MultiStepLIF

__all__ = ["SDTConfig", "SpikeDrivenTransformer", "SPIKE_NAMES", "spike_names"]


def _bn_tbchw(conv, bn, x):
    """Apply a conv and BN to ``[T, B, C, H, W]`` by folding time into the batch."""
    t, b = x.shape[:2]
    y = bn(conv(x.flatten(0, 1)))
    return y.reshape(t, b, *y.shape[1:])


def _record(spikes, name, value):
    if spikes is not None:
        spikes[name] = value.detach()


class _SPS(nn.Module):
    """Spiking patch splitting stem: four conv3×3-BN(-LIF) stages and the relative position
    embedding; output is the real-valued residual stream ``x_feat + rpe``."""

    def __init__(self, config):
        super().__init__()
        d, c = config.embed_dims, config.in_channels
        widths = [c, d // 8, d // 4, d // 2, d]
        self.pooling_stat = config.pooling_stat
        suffixes = ["", "1", "2", "3"]
        for i, sfx in enumerate(suffixes):
            conv = nn.Conv2d(widths[i], widths[i + 1], 3, 1, 1, bias=False)
            setattr(self, f"proj_conv{sfx}", conv)
            setattr(self, f"proj_bn{sfx}", nn.BatchNorm2d(widths[i + 1]))
            setattr(self, f"proj_lif{sfx}", MultiStepLIF())
        # One parameter-free pool serves every stage: all four have the same geometry.
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.rpe_conv = nn.Conv2d(d, d, 3, 1, 1, bias=False)
        self.rpe_bn = nn.BatchNorm2d(d)

    def _pool(self, x):
        t, b = x.shape[:2]
        y = self.maxpool(x.flatten(0, 1))
        return y.reshape(t, b, *y.shape[1:])

    def forward(self, x, spikes=None):
        for i, sfx in enumerate(["", "1", "2"]):
            x = _bn_tbchw(getattr(self, f"proj_conv{sfx}"), getattr(self, f"proj_bn{sfx}"), x)
            x = getattr(self, f"proj_lif{sfx}")(x)
            _record(spikes, f"sps.lif{i}", x)
            if self.pooling_stat[i] == "1":
                x = self._pool(x)  # max of spikes = OR
        x_feat = _bn_tbchw(self.proj_conv3, self.proj_bn3, x)
        if self.pooling_stat[3] == "1":
            x_feat = self._pool(x_feat)  # max of real values, before the LIF
        s = self.proj_lif3(x_feat)
        _record(spikes, "sps.lif3", s)
        return x_feat + _bn_tbchw(self.rpe_conv, self.rpe_bn, s)


def _erode_map(x):
    """The reference's DVS ``Erode`` on a spike map ``[T, B, C, H, W]``: a 3×3, stride 1 max
    over each channel's spatial neighbourhood (padding never wins: spikes are ≥ 0)."""
    return F.max_pool2d(x.flatten(0, 1), 3, 1, 1).reshape(x.shape)


def _erode_heads(x, heads):
    """The reference's ``Erode`` on its head-split tensor ``[T, B, heads, N, D/heads]``,
    applied to ``[T, B, C, H, W]``: a 3-wide max along the flattened token index ``N``
    (row-major, so it runs across row ends) times a 3-wide max along the channels of one head
    (it stops at head boundaries)."""
    t, b, c, h, w = x.shape
    y = x.reshape(t * b, heads, c // heads, h * w)  # [TB, heads, D/heads, N]
    return F.max_pool2d(y, 3, 1, 1).reshape(x.shape)


class _SDSA(nn.Module):
    """Spike-driven self-attention: Q, K, V spikes; per-channel mask from Σ_tokens K·V.

    In ``dvs`` mode (the reference's ``dvs_mode``) K and V are eroded over space, K·V and
    the masked Q over (token, channel within a head), as the reference's ``MS_SSA_Conv``
    does; the mask then depends on each token's neighbours.
    """

    def __init__(self, config):
        super().__init__()
        d = config.embed_dims
        self.num_heads = config.num_heads
        self.dvs = config.dvs
        self.shortcut_lif = MultiStepLIF()
        for name in ("q", "k", "v"):
            setattr(self, f"{name}_conv", nn.Conv2d(d, d, 1, 1, bias=False))
            setattr(self, f"{name}_bn", nn.BatchNorm2d(d))
            setattr(self, f"{name}_lif", MultiStepLIF())
        self.talking_heads_lif = MultiStepLIF(v_threshold=0.5)
        self.proj_conv = nn.Conv2d(d, d, 1, 1)
        self.proj_bn = nn.BatchNorm2d(d)
        self.register_load_state_dict_pre_hook(_drop_unused_attention_keys)

    def forward(self, x, name, spikes=None):
        s = self.shortcut_lif(x)
        _record(spikes, f"{name}.lif_in", s)
        q = self.q_lif(_bn_tbchw(self.q_conv, self.q_bn, s))
        k = self.k_lif(_bn_tbchw(self.k_conv, self.k_bn, s))
        v = self.v_lif(_bn_tbchw(self.v_conv, self.v_bn, s))
        # Recorded as the Q/K/V convs' LIF outputs (before the dvs erosion): the integer
        # flow's SDSA layer reads these.
        _record(spikes, f"{name}.q", q)
        _record(spikes, f"{name}.k", k)
        _record(spikes, f"{name}.v", v)
        if self.dvs:
            k, v = _erode_map(k), _erode_map(v)
        # Heads only regroup channels; the column sum and the mask are per channel, so the
        # head split is skipped (it cannot change any value) except where dvs pools use it.
        kv = k * v
        if self.dvs:
            kv = _erode_heads(kv, self.num_heads)
        mask = self.talking_heads_lif(kv.flatten(3).sum(-1))  # [T, B, D]
        _record(spikes, f"{name}.mask", mask)
        out = q * mask[..., None, None]
        if self.dvs:
            out = _erode_heads(out, self.num_heads)
        _record(spikes, f"{name}.out", out)
        return x + _bn_tbchw(self.proj_conv, self.proj_bn, out)


def _drop_unused_attention_keys(module, state_dict, prefix, *_):
    # The reference defines a talking-heads Conv1d it never uses; accept and ignore its weight
    # so that official checkpoints load with strict=True.
    for key in [k for k in state_dict if k.startswith(prefix + "talking_heads.")]:
        del state_dict[key]


class _MLP(nn.Module):
    """Spiking MLP: LIF → conv1×1 → BN → LIF → conv1×1 → BN, added to the residual stream."""

    def __init__(self, config):
        super().__init__()
        d, hidden = config.embed_dims, config.mlp_ratio * config.embed_dims
        self.fc1_lif = MultiStepLIF()
        self.fc1_conv = nn.Conv2d(d, hidden, 1, 1)
        self.fc1_bn = nn.BatchNorm2d(hidden)
        self.fc2_lif = MultiStepLIF()
        self.fc2_conv = nn.Conv2d(hidden, d, 1, 1)
        self.fc2_bn = nn.BatchNorm2d(d)

    def forward(self, x, name, spikes=None):
        s = self.fc1_lif(x)
        _record(spikes, f"{name}.lif_in", s)
        h = self.fc2_lif(_bn_tbchw(self.fc1_conv, self.fc1_bn, s))
        _record(spikes, f"{name}.hidden", h)
        return x + _bn_tbchw(self.fc2_conv, self.fc2_bn, h)


class _Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.attn = _SDSA(config)
        self.mlp = _MLP(config)

    def forward(self, x, index, spikes=None):
        x = self.attn(x, f"block{index}.attn", spikes)
        return self.mlp(x, f"block{index}.mlp", spikes)


def spike_names(config):
    """Ordered spike-recording names of a model with ``config`` (see :data:`SPIKE_NAMES`)."""
    names = [f"sps.lif{i}" for i in range(4)]
    for i in range(config.depths):
        names += [f"block{i}.attn.{n}" for n in ("lif_in", "q", "k", "v", "mask", "out")]
        names += [f"block{i}.mlp.{n}" for n in ("lif_in", "hidden")]
    return names + ["head.lif"]


#: Name patterns of the recorded spikes, in order; ``{i}`` is the block index.
SPIKE_NAMES = (
    "sps.lif0", "sps.lif1", "sps.lif2", "sps.lif3",
    "block{i}.attn.lif_in", "block{i}.attn.q", "block{i}.attn.k", "block{i}.attn.v",
    "block{i}.attn.mask", "block{i}.attn.out", "block{i}.mlp.lif_in", "block{i}.mlp.hidden",
    "head.lif",
)


class SpikeDrivenTransformer(nn.Module):
    """SDT v1 classifier on uint8 images.

    Parameters
    ----------
    config : SDTConfig
        Shape, time steps and input normalization.

    Attributes
    ----------
    config : SDTConfig
        The configuration the model was built from.
    mean, std : tuple of float
        Input normalization (``u8/255`` domain); plain attributes, not buffers, so the
        ``state_dict`` keys equal the reference code's.
    patch_embed : nn.Module
        SPS stem (``proj_conv``, ``proj_bn``, ... ``proj_conv3``, ``proj_bn3``, ``rpe_conv``,
        ``rpe_bn``).
    block : nn.ModuleList
        Transformer blocks, each with ``attn`` (SDSA) and ``mlp``.
    head : nn.Linear
        Classifier ``D → num_classes``.

    Notes
    -----
    ``forward(x, return_spikes=False)`` takes ``x`` uint8 ``[B, C, H, W]`` (an event model:
    event frames ``[B, T, C, H, W]`` of any real or integer dtype) and returns logits
    ``[B, num_classes]`` (mean over time steps); with ``return_spikes=True`` it returns
    ``(logits, spikes)``, ``spikes`` an ordered dict name → float 0/1 tensor (names and shapes
    in ``docs/model.md``).
    """

    def __init__(self, config):
        super().__init__()
        if not isinstance(config, SDTConfig):
            raise TypeError(f"config must be an SDTConfig, not {config!r}")
        self.config = config
        self.T = config.T
        self.mean = config.mean
        self.std = config.std
        self.patch_embed = _SPS(config)
        self.block = nn.ModuleList(_Block(config) for _ in range(config.depths))
        self.head_lif = MultiStepLIF()
        self.head = nn.Linear(config.embed_dims, config.num_classes)
        self.apply(_init_weights)

    def normalize(self, x):
        """uint8 ``[B, C, H, W]`` → normalized float ``[B, C, H, W]``."""
        if x.dtype != torch.uint8:
            raise TypeError(f"input must be a uint8 tensor of pixels, not {x.dtype}")
        c = self.config.in_channels
        if x.ndim != 4 or x.shape[1] != c or tuple(x.shape[2:]) != self.config.img_size:
            raise ValueError(f"input must have shape [B, {c}, {self.config.img_size[0]}, "
                             f"{self.config.img_size[1]}], not {list(x.shape)}")
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, c, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, c, 1, 1)
        return (x.float() / 255.0 - mean) / std

    def time_steps(self, x):
        """The input as the first layer's ``[T, B, C, H, W]`` float tensor."""
        if self.config.encoding == "direct":
            # Direct encoding: the same image at every step.
            return self.normalize(x).unsqueeze(0).repeat(self.T, 1, 1, 1, 1)
        c, (h, w) = self.config.in_channels, self.config.img_size
        if x.ndim != 5 or tuple(x.shape[1:]) != (self.T, c, h, w):
            raise ValueError(f"event input must have shape [B, {self.T}, {c}, {h}, {w}] "
                             f"(event frames per time step), not {list(x.shape)}")
        if x.dtype == torch.bool or x.is_complex():
            raise TypeError(f"event frames must hold counts (integers or floats), not {x.dtype}")
        return x.transpose(0, 1).float()  # the reference feeds event counts as they are

    def forward(self, x, return_spikes=False):
        spikes = OrderedDict() if return_spikes else None
        x = self.time_steps(x)
        x = self.patch_embed(x, spikes)
        for i, blk in enumerate(self.block):
            x = blk(x, i, spikes)
        s = self.head_lif(x.flatten(3).mean(3))  # mean over tokens, then LIF: [T, B, D]
        _record(spikes, "head.lif", s)
        logits = self.head(s).mean(0)
        return (logits, spikes) if return_spikes else logits


def _init_weights(m):
    # Same initialization scheme as the reference training (small truncated-normal convs,
    # unit BN), so training from scratch behaves alike.
    if isinstance(m, nn.Conv2d):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
