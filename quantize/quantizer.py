"""BN folding and integer quantization of a float SDT checkpoint into an :class:`IntegerModel`.

The rules are those of ``docs/integer-semantics.md`` (§3–7): per-output-channel symmetric
weights, thresholds ``ceil(V_th / s)``, one residual-stream scale aligned by left shifts, a
per-tensor head. Folding is done in float64 so that the integers do not depend on float32
rounding order. This module needs torch; :mod:`sdtforge.quantize.ir` does not.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sdtforge.errors import UserError
from sdtforge.registry import Registry

from . import ir

__all__ = ["quantize_checkpoint", "quantize_model", "fold_conv_bn", "QuantRules", "plan",
           "conv_bn_pairs", "neuron_of", "QUANTIZERS"]


def _np(t):
    return t.detach().cpu().double().numpy()


def fold_conv_bn(conv, bn):
    """Fold eval-mode BatchNorm into the preceding conv: ``(w', b')`` in float64 NumPy.

    ``w' = w·γ/σ``, ``b' = β − γ·μ/σ + conv_bias·γ/σ`` with ``σ = sqrt(var + eps)``.
    """
    w = _np(conv.weight)
    b = _np(conv.bias) if conv.bias is not None else np.zeros(w.shape[0])
    sigma = np.sqrt(_np(bn.running_var) + bn.eps)
    g = _np(bn.weight) / sigma
    w_f = w * g.reshape(-1, *([1] * (w.ndim - 1)))
    b_f = _np(bn.bias) - _np(bn.running_mean) * g + b * g
    return w_f, b_f


class QuantRules:
    """The scale rules, shared by the integer quantizer and the QAT fake quantizer."""

    def __init__(self, weight_bits):
        if not 2 <= int(weight_bits) <= 8:
            raise UserError(f"--weight-bits must be between 2 and 8, not {weight_bits}")
        self.bits = int(weight_bits)
        self.qmax = (1 << (self.bits - 1)) - 1

    def natural_scale(self, w, b):
        """Per output channel ``max|w| / q``; an all-zero channel falls back to its bias."""
        flat = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
        fallback = np.maximum(np.abs(b), 1.0) / self.qmax
        return np.where(flat > 0, flat / self.qmax, fallback)

    def stream_shift(self, w, s_r):
        """Smallest ``k ≥ 0`` per channel with ``round(max|w| / (s_r·2^k)) ≤ q``."""
        m = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
        k = np.zeros(w.shape[0], np.int64)
        while True:
            bad = np.round(m / (s_r * np.exp2(k))) > self.qmax
            if not bad.any():
                return k
            k[bad] += 1

    def quantize(self, w, b, s):
        shape = (-1,) + (1,) * (w.ndim - 1)
        wq = np.round(w / s.reshape(shape))
        if np.abs(wq).max(initial=0) > self.qmax:  # pragma: no cover - scales forbid it
            raise AssertionError("weight out of range")
        return wq.astype(np.int8), np.round(b / s).astype(np.int64)


def _theta(vth, s):
    return np.maximum(np.ceil(vth / s - 1e-9), 1).astype(np.int64)


def _check_lifs(model):
    for name, mod in model.named_modules():
        tau = getattr(mod, "tau", None)
        if tau is None or not hasattr(mod, "v_threshold"):
            continue
        if float(tau) != 2.0:
            pow2 = float(tau) > 0 and math.log2(float(tau)).is_integer()
            why = ("only τ = 2 (a one-bit shift) is implemented" if pow2 else
                   "the integer LIF needs a power-of-two τ (the decay must be a shift)")
            raise UserError(f"LIF {name!r} has τ = {tau}: {why}; retrain with tau=2")


def _known_modules(model):
    from sdtforge.model.lif import MultiStepLIF
    allowed = (torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.Linear, torch.nn.MaxPool2d,
               torch.nn.ModuleList, MultiStepLIF)
    for name, mod in model.named_modules():
        if name and not isinstance(mod, allowed) and not type(mod).__module__.startswith(
                "sdtforge.model"):
            raise UserError(f"unsupported layer {name!r} ({type(mod).__name__}) in the "
                            f"checkpoint; sdtforge quantizes SDT v1 models only")


def _config_dict(model, rules):
    cfg = model.config
    return {
        "in_channels": cfg.in_channels, "img_size": list(cfg.img_size),
        "embed_dims": cfg.embed_dims, "num_heads": cfg.num_heads, "mlp_ratio": cfg.mlp_ratio,
        "depths": cfg.depths, "T": cfg.T, "pooling_stat": cfg.pooling_stat,
        "num_classes": cfg.num_classes, "mean": list(cfg.mean), "std": list(cfg.std),
        "weight_bits": rules.bits,
        # Written for event models only: older files and readers know images alone.
        **({"encoding": cfg.encoding} if cfg.encoding != "direct" else {}),
        **({"dvs": True} if cfg.dvs else {}),
    }


def conv_bn_pairs(model):
    """``(IR layer name, conv, bn)`` of every folded conv of ``model``, in layer order."""
    pe = model.patch_embed
    out = [("sps.conv0", pe.proj_conv, pe.proj_bn), ("sps.conv1", pe.proj_conv1, pe.proj_bn1),
           ("sps.conv2", pe.proj_conv2, pe.proj_bn2), ("sps.conv3", pe.proj_conv3, pe.proj_bn3),
           ("sps.rpe", pe.rpe_conv, pe.rpe_bn)]
    for i, blk in enumerate(model.block):
        a, m = blk.attn, blk.mlp
        out += [(f"block{i}.attn.{x}", getattr(a, f"{x}_conv"), getattr(a, f"{x}_bn"))
                for x in "qkv"]
        out += [(f"block{i}.attn.proj", a.proj_conv, a.proj_bn),
                (f"block{i}.mlp.fc1", m.fc1_conv, m.fc1_bn),
                (f"block{i}.mlp.fc2", m.fc2_conv, m.fc2_bn)]
    return out


def neuron_of(model):
    """IR layer name → ``(LIF module name, integer unit key)`` of every neuron with an integer
    counterpart; the key names the scale its input current is in (a layer name, ``"stream"``
    or ``"head"``). The SDSA mask neuron is exact by construction and is left out."""
    out = {"sps.conv0": ("patch_embed.proj_lif", "sps.conv0"),
           "sps.conv1": ("patch_embed.proj_lif1", "sps.conv1"),
           "sps.conv2": ("patch_embed.proj_lif2", "sps.conv2"),
           "sps.lif3": ("patch_embed.proj_lif3", "stream")}
    for i in range(len(model.block)):
        out[f"block{i}.attn.lif_in"] = (f"block.{i}.attn.shortcut_lif", "stream")
        for x in "qkv":
            out[f"block{i}.attn.{x}"] = (f"block.{i}.attn.{x}_lif", f"block{i}.attn.{x}")
        out[f"block{i}.mlp.lif_in"] = (f"block.{i}.mlp.fc1_lif", "stream")
        out[f"block{i}.mlp.fc1"] = (f"block.{i}.mlp.fc2_lif", f"block{i}.mlp.fc1")
    out["head"] = ("head_lif", "head")
    return out


def plan(model, rules):
    """Every scale, shift and threshold the integer model of ``model`` gets (float64 NumPy).

    This is the single place the scale rules are applied; :func:`quantize_model` turns the
    plan into integers and :mod:`sdtforge.quantize.qat` fake-quantizes with the same plan,
    so a QAT-tuned model quantizes to exactly the integers it was trained with.

    Returns
    -------
    dict
        ``folded`` (name → ``(w', b')``; ``sps.conv0`` with ``1/(255·std)`` folded in),
        ``scale`` (name → per-channel scale; stream writers ``s_r·2^k``), ``shift`` (writer →
        ``k``), ``theta`` (name → thresholds; also ``"stream"`` and ``"head"``), ``stream_scale``
        (``s_r``), ``head_scale`` (per tensor), ``zero_point``, ``tokens``, ``writers``.
    """
    cfg = model.config
    config = _config_dict(model, rules)
    vth = {name: float(m.v_threshold) for name, m in model.named_modules()
           if hasattr(m, "v_threshold")}
    folded = {name: fold_conv_bn(conv, bn) for name, conv, bn in conv_bn_pairs(model)}
    # stage 0 sees normalized pixels: fold 1/(255·std) into the weights (doc §4.1); event
    # frames are taken as they are (counts, no normalization, zero padding)
    zp = np.zeros(cfg.in_channels, np.uint8)
    if cfg.encoding == "direct":
        std = np.asarray(cfg.std, np.float64)
        mean = np.asarray(cfg.mean, np.float64)
        w0, b0 = folded["sps.conv0"]
        folded["sps.conv0"] = (w0 / (255.0 * std.reshape(1, -1, 1, 1)), b0)
        zp = np.clip(np.round(255.0 * mean), 0, 255).astype(np.uint8)

    layout = ir.expected_layout(config)
    writers = [name for kind, name, *_ in layout if kind.startswith("stream_conv")]
    s_r = np.min([rules.natural_scale(*folded[w]) for w in writers], axis=0)
    n_tok = ir.expected_geometry(config)["tokens"]
    scale, shift, theta = {}, {}, {}
    neurons = neuron_of(model)
    for name, (w, b) in folded.items():
        if name in writers:
            shift[name] = rules.stream_shift(w, s_r)
            scale[name] = s_r * np.exp2(shift[name])
        else:
            scale[name] = rules.natural_scale(w, b)
            theta[name] = _theta(vth[neurons[name][0]], scale[name])
    theta["stream"] = _theta(vth["patch_embed.proj_lif3"], s_r)
    theta["head"] = _theta(vth["head_lif"] * n_tok, s_r)
    hw = _np(model.head.weight)
    s_h = float(np.abs(hw).max()) / rules.qmax if np.abs(hw).max() > 0 else 1.0
    return {"config": config, "folded": folded, "scale": scale, "shift": shift,
            "theta": theta, "stream_scale": s_r, "head_scale": s_h, "zero_point": zp,
            "tokens": n_tok, "writers": writers, "layout": layout, "vth": vth}


#: The quantize pass: one handler per layer kind, ``handler(rec, ctx)``; it adds the kind's
#: integer arrays and scalars to ``rec`` (the record's common fields and the layout's scalars
#: are already there). ``ctx`` holds the float model, the rules and the :func:`plan`.
QUANTIZERS = Registry("quantize")


@dataclass
class _Context:
    model: object
    rules: QuantRules
    plan: dict


def _weights(rec, ctx):
    """Per-channel weights and bias of a conv record (``weight``, ``bias``, ``scale``)."""
    w, b = ctx.plan["folded"][rec["name"]]
    if rec["kind"].endswith("conv1x1"):
        w = w.reshape(w.shape[0], -1)
    s = ctx.plan["scale"][rec["name"]]
    wq, bq = ctx.rules.quantize(w, b, s)
    rec.update(weight=wq, bias=bq, scale=s)
    return wq, bq


@QUANTIZERS.register("conv3x3_pixel")
def _pixel_conv(rec, ctx):
    wq, bq = _weights(rec, ctx)
    zp = ctx.plan["zero_point"]
    rec["theta"] = ctx.plan["theta"][rec["name"]]
    # padding u = zp must contribute exactly 0: acc = round(b'/s) + Σ W·(u − zp)
    rec["bias"] = bq - (wq.astype(np.int64) * zp.reshape(1, -1, 1, 1)).sum(axis=(1, 2, 3))
    rec["zero_point"] = zp


@QUANTIZERS.register("conv3x3_spike", "conv3x3_events", "conv1x1")
def _spiking_conv(rec, ctx):
    _weights(rec, ctx)
    rec["theta"] = ctx.plan["theta"][rec["name"]]


@QUANTIZERS.register("stream_conv3x3", "stream_conv1x1")
def _stream_conv(rec, ctx):
    _weights(rec, ctx)
    rec["shift"] = ctx.plan["shift"][rec["name"]].astype(np.uint8)


@QUANTIZERS.register("stream_lif")
def _stream_lif(rec, ctx):
    rec["theta"] = ctx.plan["theta"]["stream"].copy()


@QUANTIZERS.register("sdsa", "sdsa_dvs")
def _sdsa(rec, ctx):
    blk = int(rec["name"].split(".")[0][5:])
    mvth = float(ctx.model.block[blk].attn.talking_heads_lif.v_threshold)
    shift = 1
    theta = max(1, math.ceil(mvth * (1 << shift) - 1e-9))
    rec.update(theta=theta, shift=shift, stateless_or=ir.stateless_or_holds(theta, shift))


@QUANTIZERS.register("head")
def _head(rec, ctx):
    s_h = ctx.plan["head_scale"]
    wq = np.round(_np(ctx.model.head.weight) / s_h).astype(np.int8)
    bq = np.round(_np(ctx.model.head.bias) / s_h).astype(np.int64)
    rec.update(theta=ctx.plan["theta"]["head"], weight=wq, bias=bq, scale=s_h)


def quantize_model(model, weight_bits=8, provenance=None):
    """Quantize an eval-mode :class:`SpikeDrivenTransformer` into an :class:`IntegerModel`."""
    _check_lifs(model)
    _known_modules(model)
    rules = QuantRules(weight_bits)
    p = plan(model, rules)
    ctx = _Context(model, rules, p)
    layers = []
    for kind, name, inp, outp, kw in p["layout"]:
        rec = dict(kind=kind, name=name, input=inp, output=outp, widths={}, **kw)
        QUANTIZERS[kind](rec, ctx)
        layers.append(ir.LAYER_KINDS[rec.pop("kind")](**rec))
    prov = {"checkpoint_sha256": "0" * 64, "quantizer": {"weight_bits": rules.bits},
            "float_accuracy": None, "integer_accuracy": None}
    prov.update(provenance or {})
    model_ir = ir.IntegerModel(config=p["config"], layers=layers,
                               stream_theta=p["theta"]["stream"],
                               stream_scale=p["stream_scale"], provenance=prov)
    return ir.finalize(model_ir)


def _state_dict_sha256(state_dict):
    h = hashlib.sha256()
    for key in sorted(state_dict):
        h.update(key.encode())
        h.update(state_dict[key].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def load_float(ckpt_or_path):
    """``(model, ckpt, sha256)`` from a checkpoint path or an already loaded checkpoint dict."""
    from sdtforge.model import FORMAT, SDTConfig, SpikeDrivenTransformer, load_checkpoint
    if isinstance(ckpt_or_path, (str, Path)):
        path = Path(ckpt_or_path)
        model, ckpt = load_checkpoint(path)
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        return model, ckpt, sha
    ckpt = ckpt_or_path
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "state_dict" not in ckpt:
        raise UserError(f"not an sdtforge checkpoint (expected a dict with format {FORMAT!r}); "
                        f"train one with `sdtforge train`")
    try:
        model = SpikeDrivenTransformer(SDTConfig.from_dict(ckpt["config"]))
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except (ValueError, TypeError, RuntimeError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"the checkpoint is not a Spike-Driven Transformer: {first}") from None
    model.eval()
    return model, ckpt, _state_dict_sha256(ckpt["state_dict"])


def quantize_checkpoint(ckpt_or_path, weight_bits=8, qat_epochs=0, *, data_dir=None,
                        qat_lr=3e-4, seed=0, progress=False, return_float=False):
    """Fold, (optionally) fine-tune with QAT, and quantize a float checkpoint.

    Parameters
    ----------
    ckpt_or_path : str, Path or dict
        An sdtforge checkpoint file or its loaded dict.
    weight_bits : int
        Signed weight width, 4–8 (2–3 accepted for experiments).
    qat_epochs : int
        Epochs of quantization-aware fine-tuning on the checkpoint's training split first.
    data_dir : str, optional
        Local dataset folder (datasets other than digits).
    qat_lr : float
        Peak QAT learning rate (AdamW, cosine-annealed to 0).
    seed : int
        Seeds QAT's shuffling and augmentation.
    return_float : bool
        Also return the float model the integers come from (the QAT-tuned one after QAT), the
        model float-vs-integer comparisons must use.

    Returns
    -------
    IntegerModel or (IntegerModel, SpikeDrivenTransformer)
        Validated; provenance holds the checkpoint hash and settings (accuracies are filled by
        the ``quantize`` command, which evaluates).

    Raises
    ------
    UserError
        Not an SDT checkpoint, unsupported layer, τ not 2, bad settings.
    """
    model, ckpt, sha = load_float(ckpt_or_path)
    QuantRules(weight_bits)  # validate before any long work
    if qat_epochs < 0:
        raise UserError(f"--qat-epochs must be >= 0, not {qat_epochs}")
    if qat_epochs:
        from .qat import finetune
        model = finetune(model, ckpt, weight_bits=weight_bits, epochs=qat_epochs, lr=qat_lr,
                         data_dir=data_dir, seed=seed, progress=progress)
    prov = {
        "checkpoint_sha256": sha,
        "quantizer": {"weight_bits": int(weight_bits), "qat_epochs": int(qat_epochs),
                      "qat_lr": float(qat_lr) if qat_epochs else None, "seed": int(seed)},
        "preset": ckpt.get("preset"), "dataset": ckpt.get("dataset"),
        "float_accuracy": _float_or_none((ckpt.get("metrics") or {}).get("test_accuracy")),
        "integer_accuracy": None,
    }
    out = quantize_model(model, weight_bits, prov)
    # a round trip through the file format is the validation the readers will do
    out = ir.loads(ir.dumps(out), source="quantized model")
    return (out, model) if return_float else out


def _float_or_none(v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None
