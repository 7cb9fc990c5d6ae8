"""Float vs integer comparison: accuracies, per-layer spike agreement and isolated per-layer
agreement (torch is imported on use only)."""

from __future__ import annotations

import numpy as np

__all__ = ["compare", "isolated_agreement"]


def _tokens(maps):
    """``[..., C, h, w]`` → ``[..., N, C]`` (token ``n = y·w + x``)."""
    c = maps.shape[-3]
    return np.moveaxis(maps.reshape(maps.shape[:-2] + (-1,)), -2, -1).reshape(
        maps.shape[:-3] + (-1, c))


def _maps(tok, hw):
    """``[..., N, C]`` → ``[..., C, h, w]``."""
    return np.moveaxis(tok, -1, -2).reshape(tok.shape[:-2] + (tok.shape[-1],) + tuple(hw))


def _float_stream_terms(float_model, x):
    """Run the float model once; return ``(spikes, terms)`` where ``terms`` maps every stream
    writer's IR name to its real-valued contribution ``[T, B, C, h, w]`` (float64; the stage-3
    term already pooled when the config pools there)."""
    import torch

    pe = float_model.patch_embed
    mods = {"sps.conv3": pe.proj_bn3, "sps.rpe": pe.rpe_bn}
    for i, blk in enumerate(float_model.block):
        mods[f"block{i}.attn.proj"] = blk.attn.proj_bn
        mods[f"block{i}.mlp.fc2"] = blk.mlp.fc2_bn
    captured = {}

    def hook(name):
        def fn(_module, _inputs, output):
            captured[name] = output.detach()
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in mods.items()]
    try:
        with torch.no_grad():
            logits, spikes = float_model(torch.from_numpy(x), return_spikes=True)
    finally:
        for h in handles:
            h.remove()
    t_steps, batch = float_model.config.T, x.shape[0]
    terms = {}
    for name, out in captured.items():
        if name == "sps.conv3" and float_model.config.pooling_stat[3] == "1":
            out = pe.maxpool(out)
        terms[name] = out.reshape(t_steps, batch, *out.shape[1:]).double().numpy()
    spikes = {k: v.numpy().astype(np.uint8) for k, v in spikes.items()}
    return logits.numpy(), spikes, terms


def isolated_agreement(float_model, int_model, images, *, float_run=None):
    """Agreement of every integer layer run alone on the float network's own inputs.

    Each integer layer gets the *float* model's input spikes (pooled where the integer network
    pools them) instead of its integer predecessor's, and each stream reader gets the float
    residual stream before the last writer, re-quantized to the stream scale
    (``round(x / s_r)``), plus that writer's integer contribution from float input spikes. Its
    output spikes are compared with the float model's. A layer that follows the semantics
    agrees almost everywhere; a low figure here is the layer's own error, not an upstream
    difference amplified.

    Parameters
    ----------
    float_model : SpikeDrivenTransformer
        The eval-mode float model the integers came from (the QAT-tuned one after QAT).
    int_model : IntegerModel
        Its integer model.
    images : numpy.ndarray
        ``uint8 [B, C, H, W]`` (event frames: ``[B, T, C, H, W]``).
    float_run : tuple, optional
        ``(spikes, terms)`` from a previous float run on the same images.

    Returns
    -------
    dict
        Recording name → fraction of equal spikes (``block{i}.attn.mask`` and ``.out`` too).
    """
    from sdtforge.quantize import ir
    from sdtforge.sim import ops

    if float_run is None:
        _, spikes, terms = _float_stream_terms(float_model, images)
    else:
        spikes, terms = float_run
    token_hw = ir.expected_geometry(int_model.config)["token_hw"]
    t_steps = int(int_model.config["T"])
    s_r = np.asarray(int_model.stream_scale, np.float64)
    pooled = {}
    equal = {}
    f_stream = None  # float stream before the current writer, tokens [T, B, N, D]
    i_stream = None

    def check(name, s, as_maps=False):
        got = _maps(s, token_hw) if as_maps else s
        equal[name] = float((got == spikes[name]).mean())

    def src_of(layer):
        src = spikes[layer.input]
        return ops.spike_maxpool(src) if pooled.get(layer.input) else src

    for layer in int_model.layers:
        if isinstance(layer, ir.PixelConv3x3):
            acc = ops.conv3x3(images, layer.weight, layer.bias, layer.zero_point)
            acc = np.broadcast_to(acc, (t_steps,) + acc.shape)
            check(layer.output, ops.lif_run(acc, layer.theta[:, None, None]))
            pooled[layer.output] = layer.pool
        elif isinstance(layer, ir.EventConv3x3):
            acc = ops.conv3x3(np.moveaxis(images, 1, 0), layer.weight, layer.bias)
            check(layer.output, ops.lif_run(acc, layer.theta[:, None, None]))
            pooled[layer.output] = layer.pool
        elif isinstance(layer, ir.SpikeConv3x3):
            acc = ops.conv3x3(src_of(layer), layer.weight, layer.bias)
            check(layer.output, ops.lif_run(acc, layer.theta[:, None, None]))
            pooled[layer.output] = layer.pool
        elif isinstance(layer, (ir.StreamConv3x3, ir.StreamConv1x1)):
            if isinstance(layer, ir.StreamConv3x3):
                src = src_of(layer)
                if src.ndim == 4:
                    src = _maps(src, token_hw)
                acc = ops.conv3x3(src, layer.weight, layer.bias)
                acc = _tokens(ops.int_maxpool(acc) if layer.pool else acc)
            else:
                acc = ops.conv1x1(_tokens(spikes[layer.input]), layer.weight, layer.bias)
            term = _tokens(terms[layer.name])
            if getattr(layer, "mode", "add") == "set":
                i_stream = acc << layer.shift.astype(np.int64)
                f_stream = term
            else:
                base = np.round(f_stream / s_r).astype(np.int64)
                i_stream = ops.align_add(base, acc, layer.shift)
                f_stream = f_stream + term
        elif isinstance(layer, ir.StreamLIF):
            check(layer.output, ops.lif_run(i_stream, layer.theta), as_maps=True)
        elif isinstance(layer, ir.Conv1x1):
            acc = ops.conv1x1(_tokens(spikes[layer.input]), layer.weight, layer.bias)
            check(layer.output, ops.lif_run(acc, layer.theta), as_maps=True)
        elif isinstance(layer, ir.SDSA):
            q, k, v = (_tokens(spikes[n]) for n in (layer.input, layer.k, layer.v))
            heads = layer.heads if layer.KIND == "sdsa_dvs" else None
            if heads is not None:
                k, v = (ops.erode_map(x, *token_hw) for x in (k, v))
            outs, masks = ops.sdsa_run(q, k, v, layer.theta, layer.shift, heads)
            check(layer.mask_output, masks)
            check(layer.output, outs, as_maps=True)
        elif isinstance(layer, ir.Head):
            check(layer.output, ops.lif_run(i_stream.sum(axis=-2), layer.theta))
    return equal


def compare(float_model, int_model, ckpt, data_dir=None, limit=None, batch_size=256,
            progress=False, isolated=True):
    """Accuracy of both models on the test split and the fraction of equal spikes per layer.

    ``float_model`` is the (eval-mode) PyTorch model the integers came from (after QAT, the
    tuned one); the float model is imported lazily so that importing this module does not pull
    torch in. ``spike_agreement`` compares the two networks end to end (differences amplify
    along the network); ``isolated_agreement`` (:func:`isolated_agreement`) feeds each integer
    layer the float network's inputs and so measures each layer's own error.
    """
    from sdtforge.model import load_integer_inputs
    from sdtforge.sim import golden

    images, labels = load_integer_inputs(ckpt.get("dataset") or "digits", "test",
                                         int_model.config, data_dir)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    equal, total, iso = {}, {}, {}
    f_correct = i_correct = 0
    starts = range(0, len(images), batch_size)
    if progress:
        from tqdm import tqdm
        starts = tqdm(starts, desc="float vs integer", unit="batch", leave=False)
    for start in starts:
        x = images[start:start + batch_size]
        y = labels[start:start + batch_size]
        logits, spikes, terms = _float_stream_terms(float_model, x)
        res = golden.run(int_model, x, spikes=True)
        f_correct += int((logits.argmax(1) == y).sum())
        i_correct += int((res.classes == y).sum())
        for name, a in spikes.items():
            if name not in res.spikes:
                continue
            equal[name] = equal.get(name, 0) + int((a == res.spikes[name]).sum())
            total[name] = total.get(name, 0) + a.size
        if isolated:
            for name, frac in isolated_agreement(float_model, int_model, x,
                                                 float_run=(spikes, terms)).items():
                iso[name] = iso.get(name, 0.0) + frac * spikes[name].size
    n = max(len(images), 1)
    out = {
        "images": len(images),
        "float_accuracy": f_correct / n,
        "integer_accuracy": i_correct / n,
        "spike_agreement": {k: equal[k] / total[k] for k in equal},
    }
    if isolated:
        out["isolated_agreement"] = {k: iso[k] / total[k] for k in iso}
    return out
