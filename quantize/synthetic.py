"""Integer models with random weights, for tests of the golden model, the IR and the hardware.

They follow the same layout and rules as a quantized checkpoint (:mod:`sdtforge.quantize.ir`)
but need no training and no torch, so every folder's tests can build one in milliseconds.
:func:`synth_model` makes one of a preset's shape whose firing rate is near a target: a sizing
aid for models whose dataset or training is not at hand (memories, cycles, latency), never an
accuracy claim (``sdtforge synth``).
"""

import copy
import dataclasses
import math
from dataclasses import asdict

import numpy as np

from . import ir

__all__ = ["random_model", "tiny_config", "preset_config", "synth_model", "synthetic_images"]


def tiny_config(**overrides):
    """A digits-sized config (8×8×1, D=32, 1 block, T=4, pooling ``"0001"``) as a dict."""
    config = {
        "in_channels": 1, "img_size": [8, 8], "embed_dims": 32, "num_heads": 8, "mlp_ratio": 4,
        "depths": 1, "T": 4, "pooling_stat": "0001", "num_classes": 10, "mean": [0.3],
        "std": [0.4], "weight_bits": 8,
    }
    config.update(overrides)
    return config


def random_model(config=None, seed=0, theta_max=64, bias_max=32, mask_theta=1):
    """An :class:`~sdtforge.quantize.ir.IntegerModel` with random integers for ``config``.

    Weights are uniform over the full signed range of ``config["weight_bits"]``; thresholds in
    ``1..theta_max``; shifts in ``0..3``; widths are derived, so the model validates. The SDSA
    mask neurons take ``kv << 1`` with threshold ``mask_theta``: 1 is the stateless OR (the
    reference's ``V_th = 0.5``), a larger one keeps a membrane across the steps.
    """
    config = dict(tiny_config() if config is None else config)
    rng = np.random.default_rng(seed)
    qmax = (1 << (config["weight_bits"] - 1)) - 1
    d = config["embed_dims"]

    def weight(*shape):
        return rng.integers(-qmax, qmax + 1, shape).astype(np.int8)

    def vec(lo, hi, n):
        return rng.integers(lo, hi + 1, n).astype(np.int64)

    stream_theta = vec(1, theta_max, d)
    layers = []
    for kind, name, inp, outp, kw in ir.expected_layout(config):
        cls = ir.LAYER_KINDS[kind]
        rec = dict(name=name, input=inp, output=outp, widths={}, **kw)
        inputs = kind in ("conv3x3_pixel", "conv3x3_events")  # uint8 inputs, not spikes
        if inputs or kind in ("conv3x3_spike", "stream_conv3x3"):
            rec["weight"] = weight(kw["out_channels"], kw["in_channels"], 3, 3)
        elif kind in ("conv1x1", "stream_conv1x1"):
            rec["weight"] = weight(kw["out_channels"], kw["in_channels"])
        if "out_channels" in kw:
            rec["bias"] = vec(-bias_max * (255 if inputs else 1),
                              bias_max, kw["out_channels"])
            rec["scale"] = np.full(kw["out_channels"], 0.01)
        if inputs or kind in ("conv3x3_spike", "conv1x1"):
            # pixel sums are ~255x larger than spike sums; keep thresholds in reach
            scale = 255 * 9 * config["in_channels"] if inputs else 1
            rec["theta"] = vec(1, theta_max * scale, kw["out_channels"])
        if kind == "conv3x3_pixel":
            rec["zero_point"] = np.round(255 * np.asarray(config["mean"])).astype(np.uint8)
        if kind.startswith("stream_conv"):
            rec["shift"] = rng.integers(0, 4, kw["out_channels"]).astype(np.uint8)
        if kind == "stream_lif":
            rec["theta"] = stream_theta.copy()
        if kind in ("sdsa", "sdsa_dvs"):
            rec.update(theta=mask_theta, shift=1,
                       stateless_or=ir.stateless_or_holds(mask_theta, 1))
        if kind == "head":
            rec["theta"] = vec(1, theta_max * kw["tokens"], d)
            rec["weight"] = weight(kw["num_classes"], d)
            rec["bias"] = vec(-bias_max, bias_max, kw["num_classes"])
            rec["scale"] = 0.01
        layers.append(cls(**rec))
    model = ir.IntegerModel(config=config, layers=layers, stream_theta=stream_theta,
                            stream_scale=np.full(d, 0.01),
                            provenance={"checkpoint_sha256": "0" * 64,
                                        "quantizer": {"synthetic_seed": int(seed)},
                                        "float_accuracy": None, "integer_accuracy": None})
    return ir.finalize(model)


def preset_config(name):
    """The integer model config (:func:`tiny_config`'s keys) of the model preset ``name``."""
    from sdtforge.model.presets import PRESETS

    cfg = asdict(PRESETS[name].config)
    out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()
           if k in tiny_config()}
    out.setdefault("weight_bits", 8)
    if cfg["encoding"] != "direct":
        out["encoding"] = cfg["encoding"]
    if cfg["dvs"]:
        out["dvs"] = True
    return out


#: Mean events per pixel, polarity and step of :func:`synthetic_images`' event frames.
EVENT_RATE = 0.5


def synthetic_images(config, images, seed=0):
    """``images`` random inputs of ``config``'s shape (seeded): uniform ``uint8 [B, C, H, W]``
    pixels, or for an event model sparse ``[B, T, C, H, W]`` counts (Poisson, mean
    :data:`EVENT_RATE`)."""
    rng = np.random.default_rng(seed)
    shape = (images, config["in_channels"], *config["img_size"])
    if ir.config_encoding(config) == "events":
        shape = (images, int(config["T"]), *shape[1:])
        return np.minimum(rng.poisson(EVENT_RATE, shape), 255).astype(np.uint8)
    return rng.integers(0, 256, shape, dtype=np.uint8)


#: How far outside the rates it finds a target may be before :func:`synth_model` refuses it (a
#: fraction of those rates). Inside them, the rate can still jump past the target between
#: neighbouring threshold scales (one neuron that flips changes the layers after it); the
#: model's provenance has the rate it reached.
RATE_TOLERANCE = 0.25

#: Largest threshold scale :func:`synth_model` tries, as a power of two (thresholds up to 2**20
#: silence any preset), the scale its weights are drawn at, and the bisection's resolution.
_THETA_MAX_BITS, _BASE_BITS, _RESOLUTION_BITS = 20, 10, 1 / 256


def _scaled_thresholds(model, scale):
    """``model`` with every threshold array (the layers' and the stream's) times ``scale``,
    rounded, at least 1; widths derived again. The weights are shared, not copied."""
    def scaled(theta):
        return np.maximum(1, np.round(np.asarray(theta) * scale)).astype(np.int64)

    layers = [dataclasses.replace(layer, theta=scaled(layer.theta))
              if "theta" in layer.ARRAYS else dataclasses.replace(layer)
              for layer in model.layers]
    provenance = copy.deepcopy(model.provenance)
    return ir.finalize(dataclasses.replace(model, layers=layers,
                                           stream_theta=scaled(model.stream_theta),
                                           provenance=provenance))


def synth_model(preset, firing_rate, seed=0, images=1, progress=None):
    """A random integer model of ``preset``'s shape, its firing rate near ``firing_rate``.

    The weights are drawn once (:func:`random_model`); the thresholds are scaled, the scale
    bisected on a log scale (``theta_max`` from 1 to 2**20); the rate (spikes per neuron update,
    over every layer and step) is measured with the golden model on ``images`` random inputs
    (:func:`synthetic_images`), and falls as the thresholds grow. The model closest to the
    target is returned; its provenance records the preset, the dataset, the seed, the target
    and the measured rate, so ``sdtforge build`` and the latency use the same random inputs
    (:func:`sdtforge.sim.latency.sample_images`).

    Parameters
    ----------
    preset : str
        A model preset (``sdtforge presets``).
    firing_rate : float
        Target spikes per neuron update, in ``(0, 1)``.
    seed : int
        Seed of the weights, thresholds and inputs.
    images : int
        Random inputs the rate is measured on.
    progress : callable, optional
        Given a line per trial.

    Returns
    -------
    IntegerModel

    Raises
    ------
    UserError
        The target is outside the rates the preset reaches on random inputs (with
        :data:`RATE_TOLERANCE`).
    """
    from sdtforge.errors import UserError
    from sdtforge.model.presets import PRESETS
    from sdtforge.sim import golden

    if not 0 < firing_rate < 1:
        raise ValueError(f"firing_rate must be in (0, 1), not {firing_rate!r}")
    config = preset_config(preset)
    x = synthetic_images(config, images, seed)
    # The weights are drawn once; only the thresholds are scaled (a new draw per scale would
    # change the weights too, and the rate would jump between neighbouring scales).
    base = random_model(config, seed=seed, theta_max=1 << _BASE_BITS)
    tried = {}

    def trial(bits):
        if bits not in tried:
            model = _scaled_thresholds(base, 2.0 ** (bits - _BASE_BITS))
            totals = golden.run(model, x).totals()
            tried[bits] = (totals["spikes"] / max(totals["neuron_updates"], 1), model)
            if progress:
                progress(f"theta_max {2.0 ** bits:.0f}: firing rate {tried[bits][0]:.4f}")
        return tried[bits][0]

    # Rates fall as the thresholds grow: bisect log2(theta_max) over 0..20, keeping
    # rate(lo) > target >= rate(hi), until the rate is within 2 % of the target.
    lo, hi = 0.0, float(_THETA_MAX_BITS)
    while hi - lo > _RESOLUTION_BITS:
        mid = (lo + hi) / 2
        rate = trial(mid)
        if abs(rate - firing_rate) <= 0.02 * firing_rate:
            break
        lo, hi = (mid, hi) if rate > firing_rate else (lo, mid)
    bits = min(tried, key=lambda b: (abs(math.log(max(tried[b][0], 1e-9) / firing_rate)), b))
    rate, model = tried[bits]
    theta = round(2.0 ** bits)
    rates = [r for r, _ in tried.values()]
    if not min(rates) * (1 - RATE_TOLERANCE) <= firing_rate <= max(rates) * (1 + RATE_TOLERANCE):
        raise UserError(f"{preset} does not fire at {firing_rate:g} with random weights: its "
                        f"rates on random inputs run from {min(rates):.4f} to "
                        f"{max(rates):.4f}")
    model.provenance.update(dataset=PRESETS[preset].dataset, preset=preset, synthetic={
        "preset": preset, "seed": int(seed), "images": int(images),
        "firing_rate_target": float(firing_rate), "firing_rate": float(rate),
        "theta_max": theta})
    return model
