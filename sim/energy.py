"""Energy per inference with the Spike-driven Transformer paper's method (45 nm figures).

``E = E_MAC · MACs + E_AC · ACs`` with ``E_MAC = 4.6 pJ`` (32-bit float multiply-accumulate,
charged only for the first layer, which sees real-valued pixels) and ``E_AC = 0.9 pJ`` per
synaptic accumulate. Counts come from the golden model (:mod:`sdtforge.sim.golden`). How the
SDSA-vs-vanilla ratio is computed is written in ``docs/integer-semantics.md`` §9.
"""

from __future__ import annotations

__all__ = ["E_MAC_PJ", "E_AC_PJ", "energy", "sdsa_ratio", "sdsa_ratio_from_counts"]

E_MAC_PJ = 4.6
E_AC_PJ = 0.9


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


def sdsa_ratio_from_counts(model, per_image_counts):
    """:func:`sdsa_ratio` of every ``sdsa`` layer of ``model`` with its measured ``K∧V`` rate."""
    out = {}
    t_steps = int(model.config["T"])
    for layer in model.layers:
        if layer.KIND == "sdsa":
            events = per_image_counts[layer.name]["acs"]
            rate = events / (t_steps * layer.tokens * layer.channels)
            out[layer.name] = {
                "kv_rate": rate,
                "e_vsa_pj": E_MAC_PJ * 2 * layer.tokens * layer.tokens * layer.channels,
                "e_sdsa_pj": E_AC_PJ * events,
                "ratio": sdsa_ratio(layer.tokens, layer.channels, t_steps, rate)}
    return out
