"""Integer models with random weights, for tests of the golden model, the IR and the hardware.

They follow the same layout and rules as a quantized checkpoint (:mod:`sdtforge.quantize.ir`)
but need no training and no torch, so every folder's tests can build one in milliseconds.
"""

import numpy as np

from . import ir

__all__ = ["random_model", "tiny_config"]


def tiny_config(**overrides):
    """A digits-sized config (8×8×1, D=32, 1 block, T=4, pooling ``"0001"``) as a dict."""
    config = {
        "in_channels": 1, "img_size": [8, 8], "embed_dims": 32, "num_heads": 8, "mlp_ratio": 4,
        "depths": 1, "T": 4, "pooling_stat": "0001", "num_classes": 10, "mean": [0.3],
        "std": [0.4], "weight_bits": 8,
    }
    config.update(overrides)
    return config


def random_model(config=None, seed=0, theta_max=64, bias_max=32):
    """An :class:`~sdtforge.quantize.ir.IntegerModel` with random integers for ``config``.

    Weights are uniform over the full signed range of ``config["weight_bits"]``; thresholds in
    ``1..theta_max``; shifts in ``0..3``; widths are derived, so the model validates.
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
        if kind in ("conv3x3_pixel", "conv3x3_spike", "stream_conv3x3"):
            rec["weight"] = weight(kw["out_channels"], kw["in_channels"], 3, 3)
        elif kind in ("conv1x1", "stream_conv1x1"):
            rec["weight"] = weight(kw["out_channels"], kw["in_channels"])
        if "out_channels" in kw:
            rec["bias"] = vec(-bias_max * (255 if kind == "conv3x3_pixel" else 1),
                              bias_max, kw["out_channels"])
            rec["scale"] = np.full(kw["out_channels"], 0.01)
        if kind in ("conv3x3_pixel", "conv3x3_spike", "conv1x1"):
            # pixel sums are ~255x larger than spike sums; keep thresholds in reach
            scale = 255 * 9 * config["in_channels"] if kind == "conv3x3_pixel" else 1
            rec["theta"] = vec(1, theta_max * scale, kw["out_channels"])
        if kind == "conv3x3_pixel":
            rec["zero_point"] = np.round(255 * np.asarray(config["mean"])).astype(np.uint8)
        if kind.startswith("stream_conv"):
            rec["shift"] = rng.integers(0, 4, kw["out_channels"]).astype(np.uint8)
        if kind == "stream_lif":
            rec["theta"] = stream_theta.copy()
        if kind == "sdsa":
            rec.update(theta=1, shift=1, stateless_or=True)
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
