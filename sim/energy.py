"""Energy per inference with the Spike-driven Transformer paper's method (45 nm figures).

``E = E_MAC · MACs + E_AC · ACs`` with ``E_MAC = 4.6 pJ`` (32-bit float multiply-accumulate,
charged only for the first layer, which sees real-valued pixels) and ``E_AC = 0.9 pJ`` per
synaptic accumulate. Counts come from the golden model (:mod:`sdtforge.sim.golden`). How the
SDSA-vs-vanilla ratios are computed is written in ``docs/integer-semantics.md`` §9.

The paper's method charges compute only. :func:`memory_energy` adds what it leaves out: every
weight, membrane, spike, stream and input access the golden model counts, charged at the
energy of a 64-bit SRAM read of the memory's size from Horowitz's 45 nm table (ISSCC 2014) per
bit moved, memories over 1 MB as a 1 MB on-chip buffer, and weights that do not fit 1 MB once
more per image at his DRAM figure (streamed in tiles, each weight over the bus once per image,
as the SDRAM engine does).
"""

from __future__ import annotations

import math

__all__ = ["E_MAC_PJ", "E_AC_PJ", "SRAM_64BIT_PJ", "DRAM_64BIT_PJ", "energy", "sdsa_ratio",
           "sdsa_ratio_from_counts", "module_ratio", "rate_for_module_ratio", "access_pj",
           "memory_sizes", "memory_energy", "ON_CHIP_BYTES"]

E_MAC_PJ = 4.6
E_AC_PJ = 0.9

#: M. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, 45 nm:
#: energy of a 64-bit read from an SRAM array of ``bytes`` (8 KB: 10 pJ, 32 KB: 20 pJ,
#: 1 MB: 100 pJ); writes are charged as reads.
SRAM_64BIT_PJ = ((8 * 1024, 10.0), (32 * 1024, 20.0), (1024 * 1024, 100.0))
#: The same table's DRAM access, 1.3–2.6 nJ per 64 bits: the low end.
DRAM_64BIT_PJ = 1300.0
#: The largest on-chip memory the estimate assumes (the table's largest SRAM).
ON_CHIP_BYTES = SRAM_64BIT_PJ[-1][0]


def energy(per_image_counts):
    """Energy per inference from per-layer, per-image counts (:meth:`GoldenResult.per_image`).

    Returns
    -------
    dict
        ``total_uj``, ``mac_uj``, ``ac_uj`` (microjoules) and ``per_layer_pj``.
    """
    per_layer = {name: E_MAC_PJ * c["macs"] + E_AC_PJ * c["acs"]
                 for name, c in per_image_counts.items()}
    macs = sum(c["macs"] for c in per_image_counts.values())
    acs = sum(c["acs"] for c in per_image_counts.values())
    return {"total_uj": (E_MAC_PJ * macs + E_AC_PJ * acs) * 1e-6,
            "mac_uj": E_MAC_PJ * macs * 1e-6, "ac_uj": E_AC_PJ * acs * 1e-6,
            "per_layer_pj": per_layer}


def sdsa_ratio(tokens, channels, time_steps, kv_rate):
    """``E_VSA / E_SDSA`` for one attention block.

    Vanilla self-attention: ``2·N²·D`` MACs (``QKᵀ`` and ``AV``) at ``E_MAC``. SDSA: one AC per
    ``K∧V`` event, ``T·R_kv·N·D`` of them at ``E_AC`` (AND masks are not charged).
    """
    e_vsa = E_MAC_PJ * 2 * tokens * tokens * channels
    e_sdsa = E_AC_PJ * time_steps * kv_rate * tokens * channels
    return float("inf") if e_sdsa == 0 else e_vsa / e_sdsa


def _producers(model):
    return {layer.output: layer for layer in model.layers}


def sdsa_ratio_from_counts(model, per_image_counts):
    """Per ``sdsa`` layer of ``model``, with its measured rates: the operator ratio
    (:func:`sdsa_ratio`) and the module ratio with Q/K/V generation (:func:`module_ratio`'s
    accounting, the ACs of the Q, K and V convolutions as the golden model counts them)."""
    out = {}
    t_steps = int(model.config["T"])
    producer = _producers(model)
    for layer in model.layers:
        if layer.KIND not in ("sdsa", "sdsa_dvs"):
            continue
        n, d = layer.tokens, layer.channels
        events = per_image_counts[layer.name]["acs"]
        rate = events / (t_steps * n * d)
        qkv_acs = sum(per_image_counts[producer[name].name]["acs"]
                      for name in (layer.input, layer.k, layer.v))
        e_vsa_module = E_MAC_PJ * (3 * n * d * d + 2 * n * n * d)
        e_sdsa_module = E_AC_PJ * (qkv_acs + events)
        out[layer.name] = {
            "kv_rate": rate,
            "e_vsa_pj": E_MAC_PJ * 2 * n * n * d,
            "e_sdsa_pj": E_AC_PJ * events,
            "ratio": sdsa_ratio(n, d, t_steps, rate),
            "qkv_acs": qkv_acs,
            "e_vsa_module_pj": e_vsa_module,
            "e_sdsa_module_pj": e_sdsa_module,
            "module_ratio": float("inf") if e_sdsa_module == 0 else e_vsa_module / e_sdsa_module,
        }
    return out


def module_ratio(tokens, channels, time_steps, rate, kv_rate=None):
    """``E_VSA / E_SDSA`` of the attention module with Q/K/V generation, the paper's way, at a
    uniform firing rate.

    Vanilla: ``3·N·D²`` MACs for Q, K, V and ``2·N²·D`` for ``QKᵀ`` and ``AV``, once. SDSA: the
    Q, K and V convolutions take ``T·rate·N·D`` input spikes each, each spike ``D`` ACs, plus
    ``T·kv_rate·N·D`` ACs for ``K∧V`` (``kv_rate`` defaults to ``rate``).
    """
    kv_rate = rate if kv_rate is None else kv_rate
    n, d = tokens, channels
    e_vsa = E_MAC_PJ * (3 * n * d * d + 2 * n * n * d)
    e_sdsa = E_AC_PJ * time_steps * (3 * rate * n * d * d + kv_rate * n * d)
    return float("inf") if e_sdsa == 0 else e_vsa / e_sdsa


def rate_for_module_ratio(target, tokens, channels, time_steps):
    """The uniform firing rate (``kv_rate = rate``) at which :func:`module_ratio` is ``target``."""
    n, d = tokens, channels
    e_vsa = E_MAC_PJ * (3 * n * d * d + 2 * n * n * d)
    return e_vsa / (target * E_AC_PJ * time_steps * (3 * n * d * d + n * d))


def access_pj(size_bytes):
    """Energy of one 64-bit access to an SRAM of ``size_bytes``: Horowitz's figures,
    interpolated on a log–log scale between his sizes; 10 pJ at and below 8 KB; a memory over
    :data:`ON_CHIP_BYTES` is charged as a buffer of that size."""
    size_bytes = min(size_bytes, ON_CHIP_BYTES)
    if size_bytes <= SRAM_64BIT_PJ[0][0]:
        return SRAM_64BIT_PJ[0][1]
    for (s0, e0), (s1, e1) in zip(SRAM_64BIT_PJ, SRAM_64BIT_PJ[1:], strict=False):
        if size_bytes <= s1:
            f = math.log(size_bytes / s0) / math.log(s1 / s0)
            return math.exp(math.log(e0) + f * math.log(e1 / e0))
    raise AssertionError("unreachable")


def _bits(model):
    """Bits per access of each memory, per layer: ``{layer name: {memory: bits}}``."""
    wbits = int(model.config["weight_bits"])
    return {layer.name: {"weight": wbits, "state": int(layer.widths.get("v", 0)), "spike": 1,
                         "stream": int(model.stream_bits), "input": 8}
            for layer in model.layers}


def memory_sizes(model, per_image_counts):
    """Bytes of each memory the accesses go to: all weights; the largest layer's membranes
    (state of one image); two of the largest spike maps (a layer's input and output); the
    residual stream; one input image."""
    t_steps = int(model.config["T"])
    bits = _bits(model)
    weights = sum(layer.weight.size for layer in model.layers
                  if getattr(layer, "weight", None) is not None)
    per_step = {name: {k: v / t_steps for k, v in c.items()}
                for name, c in per_image_counts.items()}
    return {
        "weight": weights * int(model.config["weight_bits"]) / 8,
        "state": max(c["state_writes"] * bits[n]["state"] for n, c in per_step.items()) / 8,
        "spike": 2 * max(c["spike_writes"] for c in per_step.values()) / 8,
        "stream": max(c["stream_writes"] for c in per_step.values())
        * int(model.stream_bits) / 8,
        "input": max(c["input_reads"] for c in per_image_counts.values()),
    }


def memory_energy(model, per_image_counts):
    """Memory-inclusive energy per inference beside the paper's compute-only figure.

    Every access the golden model counts (``weight_reads``, ``state_reads``/``_writes``,
    ``spike_…``, ``stream_…``, ``input_reads``) moves its bits (weights: ``weight_bits``;
    membranes: the layer's ``v`` width; spikes: 1; stream: ``stream_bits``; pixels: 8) at
    ``access_pj(size) / 64`` per bit, ``size`` from :func:`memory_sizes`: ideally packed words,
    so a lower bound for a given memory organization. Weights over :data:`ON_CHIP_BYTES` also
    cross the DRAM bus once per image (``dram``, at :data:`DRAM_64BIT_PJ`).

    Returns
    -------
    dict
        ``compute_uj`` (the paper's method, :func:`energy`), ``memory_uj``, ``total_uj``,
        ``by_memory_uj`` (``weight``, ``state``, ``spike``, ``stream``, ``input``, ``dram``),
        ``sizes_bytes``, ``pj_per_64bit`` and ``per_layer_pj`` (on-chip memory only).
    """
    sizes = memory_sizes(model, per_image_counts)
    pj64 = {m: access_pj(b) for m, b in sizes.items()}
    bits = _bits(model)
    by_memory = dict.fromkeys(sizes, 0.0)
    per_layer = {}
    for name, c in per_image_counts.items():
        layer_pj = 0.0
        for mem in sizes:
            accesses = sum(v for k, v in c.items()
                           if k in (f"{mem}_reads", f"{mem}_writes"))
            pj = accesses * bits[name][mem] * pj64[mem] / 64
            by_memory[mem] += pj
            layer_pj += pj
        per_layer[name] = layer_pj
    weight_bytes = sizes["weight"]
    by_memory["dram"] = (weight_bytes * 8 / 64 * DRAM_64BIT_PJ
                         if weight_bytes > ON_CHIP_BYTES else 0.0)
    compute = energy(per_image_counts)["total_uj"]
    memory = sum(by_memory.values()) * 1e-6
    return {"compute_uj": compute, "memory_uj": memory, "total_uj": compute + memory,
            "by_memory_uj": {m: v * 1e-6 for m, v in by_memory.items()},
            "sizes_bytes": sizes, "pj_per_64bit": pj64, "per_layer_pj": per_layer}
