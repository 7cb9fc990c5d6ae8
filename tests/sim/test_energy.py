"""Memory access counts of the golden model and the energy estimates built on them."""

import math

import numpy as np
import pytest

from sdtforge.quantize import synthetic
from sdtforge.sim import energy, golden


@pytest.fixture(scope="module")
def run():
    m = synthetic.random_model(seed=1, theta_max=8)
    images = synthetic.synthetic_images(m.config, 2, seed=4)
    return m, golden.run(m, images, spikes=True)


def test_access_counts_follow_the_layers(run):
    m, r = run
    c, s, t = r.counts, r.spikes, m.config["T"]
    d, n, b = 32, 16, 2
    # every spiking layer reads and writes its membrane and writes a spike per neuron update
    for name, layer_counts in c.items():
        if layer_counts["neuron_updates"] and not name.endswith("sdsa"):
            assert layer_counts["state_reads"] == layer_counts["state_writes"] \
                == layer_counts["spike_writes"] == layer_counts["neuron_updates"], name
    # one weight per synaptic accumulate; the first layer's MACs read their weights
    assert c["block0.attn.q"]["weight_reads"] == c["block0.attn.q"]["acs"]
    assert c["sps.conv0"]["weight_reads"] == c["sps.conv0"]["macs"] > 0
    assert c["sps.conv0"]["input_reads"] == b * 64
    # a 1×1 conv reads its whole input map once
    assert c["block0.attn.q"]["spike_reads"] == s["block0.attn.lif_in"].size
    # SDSA reads Q, K, V and writes the output and the masks, no weights
    sdsa = c["block0.attn.sdsa"]
    assert sdsa["spike_reads"] == 3 * t * b * n * d
    assert sdsa["spike_writes"] == t * b * n * d + t * b * d
    assert sdsa["weight_reads"] == 0
    layer = next(x for x in m.layers if x.KIND == "sdsa")
    assert sdsa["state_reads"] == (0 if layer.stateless_or else t * b * d)
    # the residual adds read and write the stream; the head reads it
    assert c["block0.mlp.fc2"]["stream_reads"] == c["block0.mlp.fc2"]["stream_writes"] \
        == t * b * n * d
    assert c["head"]["stream_reads"] == t * b * n * d
    for layer_counts in c.values():
        assert layer_counts["mem_reads"] == sum(layer_counts[k] for k in golden.MEMORY_KEYS
                                                if k.endswith("_reads"))


def test_access_energy_follows_the_table():
    assert energy.access_pj(1024) == 10.0
    assert energy.access_pj(8 * 1024) == 10.0
    assert energy.access_pj(32 * 1024) == pytest.approx(20.0)
    assert energy.access_pj(1024 * 1024) == pytest.approx(100.0)
    assert energy.access_pj(16 * 1024) == pytest.approx(10.0 * math.sqrt(2))  # log–log
    assert energy.access_pj(64 * 1024 * 1024) == pytest.approx(100.0)  # a 1 MB buffer


def test_memory_energy_adds_up(run):
    m, r = run
    pi = r.per_image()
    e = energy.memory_energy(m, pi)
    assert e["compute_uj"] == pytest.approx(energy.energy(pi)["total_uj"])
    assert e["total_uj"] == pytest.approx(e["compute_uj"] + e["memory_uj"])
    assert e["memory_uj"] == pytest.approx(sum(e["by_memory_uj"].values()))
    assert sum(e["per_layer_pj"].values()) * 1e-6 == pytest.approx(
        e["memory_uj"] - e["by_memory_uj"]["dram"])
    assert e["by_memory_uj"]["dram"] == 0  # 28 kB of weights fit on chip
    # weights: one 8-bit weight per AC/MAC, at the table's energy for the weights' size
    weights = sum(layer.weight.size for layer in m.layers if getattr(layer, "weight", None)
                  is not None)
    assert e["sizes_bytes"]["weight"] == weights
    reads = sum(c["weight_reads"] for c in pi.values())
    assert e["by_memory_uj"]["weight"] == pytest.approx(
        reads * 8 * energy.access_pj(weights) / 64 * 1e-6)
    assert all(v > 0 for k, v in e["by_memory_uj"].items() if k != "dram")


def test_weights_off_chip_cross_the_dram_once_per_image():
    m = synthetic.random_model(synthetic.preset_config("cifar10-2-512"), seed=1)
    r = golden.run(m, synthetic.synthetic_images(m.config, 1))
    e = energy.memory_energy(m, r.per_image())
    assert e["sizes_bytes"]["weight"] > energy.ON_CHIP_BYTES
    assert e["by_memory_uj"]["dram"] == pytest.approx(
        e["sizes_bytes"]["weight"] * 8 / 64 * energy.DRAM_64BIT_PJ * 1e-6)


def test_module_ratio_with_qkv(run):
    m, r = run
    pi = r.per_image()
    sd = energy.sdsa_ratio_from_counts(m, pi)["block0.attn.sdsa"]
    qkv = sum(pi[f"block0.attn.{x}"]["acs"] for x in "qkv")
    assert sd["qkv_acs"] == qkv
    assert sd["e_vsa_module_pj"] == pytest.approx(4.6 * (3 * 16 * 32 * 32 + 2 * 16 * 16 * 32))
    assert sd["e_sdsa_module_pj"] == pytest.approx(0.9 * (qkv + pi["block0.attn.sdsa"]["acs"]))
    assert sd["module_ratio"] == pytest.approx(sd["e_vsa_module_pj"] / sd["e_sdsa_module_pj"])
    # the module's ratio is far below the operator's: Q/K/V generation dominates SDSA's cost
    assert sd["module_ratio"] < sd["ratio"]


def test_the_paper_ratio_on_its_imagenet_shape():
    n, d, t = 196, 512, 4
    rate = energy.rate_for_module_ratio(87.2, n, d, t)
    assert energy.module_ratio(n, d, t, rate) == pytest.approx(87.2)
    assert 0.018 < rate < 0.019
    vanilla = 4.6 * (3 * n * d * d + 2 * n * n * d)
    assert energy.module_ratio(n, d, t, 0.1, kv_rate=0.05) == pytest.approx(
        vanilla / (0.9 * t * (3 * 0.1 * n * d * d + 0.05 * n * d)))
    assert energy.module_ratio(n, d, t, 0.0) == math.inf


def test_memory_keys_are_counted_for_every_layer(run):
    _, r = run
    for c in r.counts.values():
        assert set(golden.MEMORY_KEYS) <= set(c)
        assert all(isinstance(c[k], (int, np.integer)) for k in golden.MEMORY_KEYS)
