"""The whole accelerator in the Amaranth simulator: bit-exact logits, exact cycle model."""

import dataclasses
import gc
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdtforge.errors import UserError
from sdtforge.hdl.compile import compile_model
from sdtforge.quantize.synthetic import random_model, tiny_config
from sdtforge.sim import cycles, golden

from ._sim import run_accelerator

CASES = {
    "4x4-d8": (tiny_config(img_size=[4, 4], embed_dims=8, T=2, num_classes=3), 8, 16),
    "6x5-c2-pool-p4w8": (tiny_config(img_size=[6, 5], embed_dims=16, T=3, num_classes=4,
                                     pooling_stat="1001", in_channels=2, mean=[0.3, 0.5],
                                     std=[0.4, 0.2]), 4, 8),
    # Event frames: the pixel datapath gathers each step's own frame.
    "6x5-events-c2-pool-p4w8": (tiny_config(img_size=[6, 5], embed_dims=16, T=3, num_classes=4,
                                            pooling_stat="1001", in_channels=2, mean=[0, 0],
                                            std=[1, 1], encoding="events"), 4, 8),
    # DVS-mode attention: stride-1 POOL_OR erosions of K and V, the SDSA stage's own; heads
    # of 4 channels (two per word) and of 16 (two words per head).
    "5x3-dvs-h4-p4w8": (tiny_config(img_size=[5, 3], embed_dims=16, num_heads=4, T=2,
                                    mlp_ratio=1, num_classes=3, pooling_stat="0000",
                                    in_channels=2, mean=[0, 0], std=[1, 1], encoding="events",
                                    dvs=True), 4, 8),
    "3x4-dvs-h16-p4w8": (tiny_config(img_size=[3, 4], embed_dims=16, num_heads=1, T=2,
                                     mlp_ratio=1, num_classes=3, pooling_stat="0000",
                                     dvs=True), 4, 8),
}


def _check(config, lanes, width, seed, images, stall=None, external_weights=False,
           widen=None, late=None, theta_max=4, writeback=1, dram_latency=None,
           prefetch_window=None, input_max=255, mask_theta=1, sdsa_or=None, pool_or=None,
           events=1, stream_latency=1, weight_latency=1):
    model = random_model(config, seed=seed, theta_max=theta_max, mask_theta=mask_theta)
    compiled = compile_model(model, lanes=lanes, width=width, writeback_lanes=lanes // writeback,
                             events=events)
    given = {name: value for name, value in (("sdsa_or", sdsa_or), ("pool_or", pool_or),
                                             ("stream_latency", stream_latency),
                                             ("weight_latency", weight_latency))
             if value is not None and value != getattr(compiled.config, name)}
    if given:
        compiled = compile_model(model, dataclasses.replace(compiled.config, **given))
    if widen:
        # A given configuration wider than the derived one: a longer descriptor.
        hw = dataclasses.replace(compiled.config, **widen)
        compiled = compile_model(model, hw)
    rng = np.random.default_rng(seed)
    frames = (config["T"],) if config.get("encoding") == "events" else ()
    shape = (images, *frames, config["in_channels"], *config["img_size"])
    # ``input_max``: the largest input value, or one per image.
    highest = np.broadcast_to(np.asarray(input_max), (images,)).reshape(-1, *[1] * len(shape[1:]))
    pixels = rng.integers(0, highest + 1, shape).astype(np.uint8)
    ref = golden.run(model, pixels, spikes=True)
    got = run_accelerator(compiled, pixels, stall=stall, external_weights=external_weights,
                          late=late, dram_latency=dram_latency,
                          prefetch_window=prefetch_window)
    out = []
    for i, (logits, cls, cyc) in enumerate(got):
        assert logits == ref.logits[i].tolist()
        assert cls == int(ref.classes[i])
        layers = cycles.predict(model, ref.spikes, lanes, width, image=i,
                                config=compiled.config)
        predicted = layers["total"]
        if late or dram_latency:
            # Each cycle a weight row is late costs the engine a cycle; nothing else changes.
            assert cyc > predicted
        else:
            assert cyc == predicted, (cyc, predicted)
        out.append((cyc, predicted, layers["layers"]))
    return out


#: Thresholds of the random models per case (``random_model``'s ``theta_max``) where the default
#: would fire too densely: the DVS erosions of dense spikes give masks and outputs of nearly all
#: ones, which an erosion error would rarely change.
THETA_MAX = {"5x3-dvs-h4-p4w8": 96, "3x4-dvs-h16-p4w8": 96}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bit_exact(case):
    config, lanes, width = CASES[case]
    theta_max = THETA_MAX.get(case, 4)
    if config.get("dvs"):
        model = random_model(config, seed=1, theta_max=theta_max)
        frames = (config["T"],) if config.get("encoding") == "events" else ()
        x = np.random.default_rng(1).integers(
            0, 256, (2, *frames, config["in_channels"], *config["img_size"])).astype(np.uint8)
        spikes = golden.run(model, x, spikes=True).spikes
        for name in ("block0.attn.mask", "block0.attn.out"):
            assert 0.1 < spikes[name].mean() < 0.6, (name, spikes[name].mean())
    _check(config, lanes, width, seed=1, images=2, theta_max=theta_max)


def test_event_frames_gather_from_their_top_plane():
    """Samples one after another with counts up to 255, up to 5 (three bit-planes) and all
    zero (plane 0 alone, the bias): each gathered from its own top plane down at every step
    (the received OR restarts per sample), bit-exact, the RTL's cycles equal to the cycle
    model's, and the first layer's cycles falling with the planes."""
    config, lanes, width = CASES["6x5-events-c2-pool-p4w8"]
    got = _check(config, lanes, width, seed=3, images=3, input_max=[255, 5, 0])
    first = [layers["sps.conv0"] for _, _, layers in got]
    # Per position: the first plane 4 + 18 cycles (its start, the fetch's latency, a word per
    # tap and channel), each later one 4 + 18 (the plane before's DRAIN, its start, two
    # cycles of refill), the last one's sums and Horner step 4.
    gather = 4 + 18 + 7 * (4 + 18) + 4                  # all eight planes, per position
    per_plane = 4 + 9 * 2
    # 1 output group, 30 positions, 3 steps: 8, 3 and 1 planes.
    assert first[0] - first[1] == 30 * 3 * 5 * per_plane
    assert first[1] - first[2] == 30 * 3 * 2 * per_plane
    assert first[0] > 30 * 3 * gather


@pytest.mark.parametrize("case,writeback", [("4x4-d8", 8), ("4x4-d8", 2),
                                            ("6x5-c2-pool-p4w8", 4), ("6x5-c2-pool-p4w8", 2),
                                            ("6x5-events-c2-pool-p4w8", 4),
                                            ("5x3-dvs-h4-p4w8", 2)])
def test_lane_serial_writeback(case, writeback):
    """A write-back of ``lanes / writeback`` lanes per cycle: bit-exact, and the cycle model's
    row-by-row recurrence (each row's write-back overlapped with the next row's gather, the
    pixel layer's planes and the head's tokens folded in the stage) equals the RTL's count.
    The event frames' positions gather from one to eight planes at every step (a position of
    zeros: one plane, first and last at once)."""
    config, lanes, width = CASES[case]
    input_max = [255, 1] if config.get("encoding") == "events" else 255
    _check(config, lanes, width, seed=1, images=2, writeback=writeback, input_max=input_max)


@pytest.mark.parametrize("case,writeback,stall", [
    ("4x4-d8", 1, None), ("6x5-c2-pool-p4w8", 1, 0.3), ("6x5-events-c2-pool-p4w8", 4, None),
    ("5x3-dvs-h4-p4w8", 1, None), ("4x4-d8", 2, 0.3)])
def test_two_events_per_command(case, writeback, stall):
    """Two events per PE command (``AccelConfig.events``, the ULX3S's): the encoder hands out a
    word's spikes two at a time, the lanes add both rows read on the weight memory's two
    ports. Bit-exact, and the cycle model (a word's items, not its spikes) equal to the RTL
    without stalls; fewer cycles than one event per command."""
    config, lanes, width = CASES[case]
    input_max = [255, 1] if config.get("encoding") == "events" else 255
    stalls = np.random.default_rng(7).random(100000) < (stall or 0)
    kw = dict(seed=1, images=2, writeback=writeback, input_max=input_max,
              stall=(lambda i: bool(stalls[i % 100000])) if stall else None)
    two = _check(config, lanes, width, events=2, **kw)
    if stall is None:
        one = _check(config, lanes, width, **kw)
        assert sum(c for c, _, _ in two) < sum(c for c, _, _ in one)


@pytest.mark.parametrize("case", ["4x4-d8", "5x3-dvs-h4-p4w8"])
def test_sdsa_masks_of_both_units(case):
    """The SDSA unit is built for the model's masks (``AccelConfig.sdsa_or``): the stateless
    OR unit for OR masks (θ = 1, what the shipped models have), the serial mask neuron for
    masks with a membrane (θ = 2) and, given a configuration that says so, for OR masks too.
    Bit-exact in each, with the cycle model equal to the RTL: the OR unit spends a cycle per
    mask word and step where the neuron spends ``W`` (less the cycles under the first ``Q``),
    and an OR unit refuses a model with a membrane."""
    config, lanes, width = CASES[case]
    theta_max = THETA_MAX.get(case, 4)
    model = random_model(config, seed=1, theta_max=theta_max)
    assert compile_model(model, lanes=lanes, width=width).config.sdsa_or == 1
    with_membrane = random_model(config, seed=1, theta_max=theta_max, mask_theta=2)
    assert compile_model(with_membrane, lanes=lanes, width=width).config.sdsa_or == 0
    with pytest.raises(UserError, match="built with sdsa_or=1"):
        compile_model(with_membrane, compile_model(model, lanes=lanes, width=width).config)
    or_unit = _check(config, lanes, width, seed=1, images=2, theta_max=theta_max)
    neuron = _check(config, lanes, width, seed=1, images=2, theta_max=theta_max, sdsa_or=0)
    _check(config, lanes, width, seed=1, images=2, theta_max=theta_max, mask_theta=2)
    t, words = config["T"], -(-config["embed_dims"] // width)
    overlap = 2 if config.get("dvs") else 1
    for (cyc_or, _, _), (cyc_neuron, _, _) in zip(or_unit, neuron, strict=True):
        assert cyc_neuron - cyc_or == t * (words * width - overlap - words)


def test_the_pool_stage_is_built_for_models_with_spike_max_pools():
    """``AccelConfig.pool_or`` is 1 for a model with a ``POOL_OR`` (a pooled spiking conv, a
    DVS model's erosions) and 0 otherwise; a configuration without the stage has no pool
    module and refuses such a model in one line; one with the stage still runs a model
    without a spike max-pool, bit-exact, at the same cycles."""
    from amaranth.back import rtlil

    from sdtforge.hdl.accelerator import Accelerator

    derived = {case: compile_model(random_model(CASES[case][0], seed=1), lanes=CASES[case][1],
                                   width=CASES[case][2]).config.pool_or
               for case in ("4x4-d8", "6x5-c2-pool-p4w8", "5x3-dvs-h4-p4w8")}
    assert derived == {"4x4-d8": 0, "6x5-c2-pool-p4w8": 1, "5x3-dvs-h4-p4w8": 1}
    config, lanes, width = CASES["6x5-c2-pool-p4w8"]
    compiled = compile_model(random_model(config, seed=1), lanes=lanes, width=width)
    bare = dataclasses.replace(compiled.config, pool_or=0)
    with pytest.raises(UserError, match=r"^the model has spike max-pools \(POOL_OR\) but the "
                                        r"hardware was built without the pool stage"):
        compile_model(random_model(config, seed=1), bare)
    cells = {cfg.pool_or: rtlil.convert(Accelerator(cfg), name="top")
             for cfg in (compiled.config, bare)}
    assert "cell \\top.pool " in cells[1] and "top.pool" not in cells[0]
    config, lanes, width = CASES["4x4-d8"]
    without = _check(config, lanes, width, seed=1, images=1)
    with_stage = _check(config, lanes, width, seed=1, images=1, pool_or=1)
    assert [c for c, _, _ in with_stage] == [c for c, _, _ in without]


def test_pooled_merges_stall_the_next_row():
    """A pooled conv with one spike word per position and sparse spikes: a row after an
    interior position gathers fewer cycles than the 4 window merges before it take, so the
    take waits (the cycle model's row-by-row recurrence, checked here to differ from the
    stall-free sum)."""
    config = tiny_config(img_size=[5, 5], embed_dims=8, T=2, num_classes=3,
                         pooling_stat="0001")
    model = random_model(config, seed=3, theta_max=12)
    pixels = np.random.default_rng(3).integers(0, 256, (1, 1, 5, 5)).astype(np.uint8)
    ref = golden.run(model, pixels, spikes=True)
    ctx = cycles._Context(model, ref.spikes, 4, 8, 0, cycles._pooled_outputs(model), 0)
    (conv,) = [lay for lay in model.layers if getattr(lay, "pool", False)
               and lay.KIND == "stream_conv3x3"]
    smap = ctx.smap(conv.input)
    assert cycles._conv_cycles(smap, 2, True, 8, pool=True) > \
        cycles._conv_cycles(smap, 2, True, 8, pool=False)
    _check(config, 4, 8, seed=3, images=1, theta_max=12)


def test_stalls_on_every_port():
    rng = np.random.default_rng(7)
    stalls = rng.random(100000) < 0.3
    config, lanes, width = CASES["4x4-d8"]
    _check(config, lanes, width, seed=5, images=1, stall=lambda i: bool(stalls[i % 100000]))


@pytest.mark.parametrize("writeback", [1, 4])
def test_external_weights(writeback):
    rng = np.random.default_rng(3)
    stalls = rng.random(100000) < 0.2
    config, lanes, width = CASES["6x5-c2-pool-p4w8"]
    _check(config, lanes, width, seed=4, images=1, external_weights=True,
           stall=lambda i: bool(stalls[i % 100000]), writeback=writeback)


@pytest.mark.parametrize("writeback", [1, 4])
def test_late_weight_rows(writeback):
    """The weight path is a stream: rows that come late (a DRAM prefetch miss) stall the
    engine and change nothing but the cycle count (with a lane-serial write-back too, whose
    pixel planes then gather longer than their folds)."""
    rng = np.random.default_rng(6)
    late = rng.random(100000) < 0.3
    config, lanes, width = CASES["6x5-c2-pool-p4w8"]
    _check(config, lanes, width, seed=4, images=2, external_weights=True,
           late=lambda k: bool(late[k % 100000]), writeback=writeback)


@pytest.mark.parametrize("late_rate", [0, 0.3])
def test_two_events_with_external_weights(late_rate):
    """Two events per command with the weights outside the accelerator (the iCEBreaker's two
    SPRAM copies): each request names both rows and the source answers both at once; rows
    that come late change nothing but the cycle count."""
    late = np.random.default_rng(9).random(100000) < late_rate
    config, lanes, width = CASES["6x5-c2-pool-p4w8"]
    _check(config, lanes, width, seed=4, images=2, external_weights=True, events=2,
           writeback=4, late=(lambda k: bool(late[k % 100000])) if late_rate else None)


@pytest.mark.parametrize("latency", [4, 13])
def test_weights_in_dram(latency):
    """The weights written into DRAM by the loader (through ``DRAMWeights``, which holds the
    loader while a row's words are written) and read back per event: bit-exact, slower."""
    rng = np.random.default_rng(8)
    stalls = rng.random(100000) < 0.2
    config, lanes, width = CASES["6x5-c2-pool-p4w8"]
    _check(config, lanes, width, seed=4, images=1, stall=lambda i: bool(stalls[i % 100000]),
           dram_latency=latency)


def test_weights_in_dram_prefetched():
    """The same DRAM behind the tile prefetch (``WeightPrefetch``, a window of 256 rows for
    tiles of 144), two images so that the stream wraps into the second: bit-exact, and within
    10 % of the on-chip engine's cycles (the plain path waits on every row), because each row
    is fetched once per image ahead of the engine.

    With two events per command the window reads both rows of a request at once: bit-exact,
    and faster than with one (about 15.1 k cycles against 17.8 k), though further over its
    own on-chip count (about 18 %), because the same rows must now arrive in fewer cycles of
    compute (a window of 1 024 rows, which the load fills, runs at the on-chip count)."""
    config, lanes, width = CASES["6x5-c2-pool-p4w8"]
    one = _check(config, lanes, width, seed=4, images=2, dram_latency=13, prefetch_window=256)
    for cyc, predicted, _ in one:
        assert predicted < cyc < 1.1 * predicted
    two = _check(config, lanes, width, seed=4, images=2, dram_latency=13, prefetch_window=256,
                 events=2)
    for (cyc, predicted, _), (cyc1, _, _) in zip(two, one, strict=True):
        assert predicted < cyc < min(1.25 * predicted, cyc1)


@pytest.mark.parametrize("case", ["4x4-d8", "6x5-c2-pool-p4w8"])
def test_stream_reads_of_three_cycles(case):
    """The stream memory read through registers (``stream_latency = 3``, the ULX3S builds):
    bit-exact, the cycle model's count, and each reader's cost: ``STREAM_LIF`` two cycles
    per layer (its first rows read in three), ``HEAD_SUM`` a token per cycle and three more
    per row instead of two per token; the residual
    ``ADD`` rows none (the write-back keeps the word a late row needs); a pooled conv's
    merges pipelined (a window per cycle and three more, the layer ending with its last)."""
    config, lanes, width = CASES[case]
    one = _check(config, lanes, width, seed=1, images=2)
    three = _check(config, lanes, width, seed=1, images=2, stream_latency=3)
    model = random_model(config, seed=1)
    rows = config["T"] * -(-config["embed_dims"] // lanes)           # HEAD_SUM's (step, group)
    for (_, _, l1), (_, _, l3) in zip(one, three, strict=True):
        # Two cycles per token, or a token per cycle and three more.
        assert l1["head"] - l3["head"] == (2 * model.tokens - (model.tokens + 3)) * rows
        lif = [lay.name for lay in model.layers if lay.KIND == "stream_lif"]
        assert len(lif) == 3
        assert all(l3[k] - l1[k] == 2 for k in lif)
        # The residual layers (ADD) cost what they did.
        assert all(l3[k] == l1[k] for k in l1 if k.endswith((".proj", ".fc2", ".rpe")))


def test_stream_reads_of_three_cycles_with_late_weights():
    """Late weight rows delay a residual row's sums well past its latch: its stream word
    then comes from the write-back's own register (``xs_held``); two events per command from
    a DRAM prefetch as the ULX3S's ``--sdram`` top has them."""
    late = np.random.default_rng(6).random(100000) < 0.3
    config, lanes, width = CASES["6x5-c2-pool-p4w8"]
    _check(config, lanes, width, seed=4, images=2, external_weights=True,
           late=lambda k: bool(late[k % 100000]), stream_latency=3)
    _check(config, lanes, width, seed=4, images=1, dram_latency=13, prefetch_window=256,
           events=2, stream_latency=3)


#: The layer kinds whose rows the PE array sums (the head: its linear layer).
_CONVS = ("conv3x3_spike", "stream_conv3x3", "conv1x1", "stream_conv1x1", "head")


@pytest.mark.parametrize("case,engine", [
    ("4x4-d8", {}),
    # The ULX3S's engine: two events per command, the stream read through registers.
    ("6x5-c2-pool-p4w8", {"events": 2, "stream_latency": 3}),
    # A lane-serial write-back: its sums register holds rows longer, and the PE array's
    # second stage fills while the first waits.
    ("4x4-d8", {"events": 2, "writeback": 4}),
    ("5x3-dvs-h4-p4w8", {}),
])
def test_weight_rows_through_a_register(case, engine):
    """The PE array takes each weight row into a register before its adders
    (``weight_latency = 2``, the ULX3S builds): bit-exact, the cycle model's count, and the
    pixel layer's cost one cycle more per gather of a (group, position), its last plane's sums
    a cycle later; no layer is faster, and none slower by more than a cycle per row."""
    config, lanes, width = CASES[case]
    theta = THETA_MAX.get(case, 4)
    one = _check(config, lanes, width, seed=1, images=2, theta_max=theta, **engine)
    two = _check(config, lanes, width, seed=1, images=2, theta_max=theta, weight_latency=2,
                 **engine)
    model = random_model(config, seed=1, theta_max=theta)
    pixel = model.layers[0]
    positions = pixel.height * pixel.width * -(-pixel.out_channels // lanes)
    gathers = config["T"] if config.get("encoding") == "events" else 1      # event frames
    # Where the write-back takes each row as it comes (all lanes, no pooled merge) the next
    # row's last event goes as the row enters the PE array's last stage: such a conv layer
    # costs one cycle more (its drain), its rows no more.
    merged = {lay.name for lay in model.layers
              if lay.KIND.startswith("stream_conv") and getattr(lay, "pool", False)}
    at_once = [lay.name for lay in model.layers if lay.KIND in _CONVS and lay.name not in merged]
    for (c1, _, l1), (c2, _, l2) in zip(one, two, strict=True):
        assert c2 > c1
        assert l2[pixel.name] - l1[pixel.name] == positions * gathers
        assert all(0 <= l2[k] - l1[k] <= config["T"] * positions for k in l1)
        if engine.get("writeback", 1) == 1:
            assert at_once and all(l2[k] - l1[k] == 1 for k in at_once)


def test_weight_rows_through_a_register_when_late():
    """Late weight rows, and rows from a DRAM prefetch with two events per command (the
    ULX3S's ``--sdram`` engine): the registered row waits with its command, bit-exact."""
    late = np.random.default_rng(7).random(100000) < 0.3
    config, lanes, width = CASES["6x5-c2-pool-p4w8"]
    _check(config, lanes, width, seed=4, images=2, external_weights=True,
           late=lambda k: bool(late[k % 100000]), weight_latency=2)
    _check(config, lanes, width, seed=4, images=1, dram_latency=13, prefetch_window=256,
           events=2, stream_latency=3, weight_latency=2)


def test_a_longer_descriptor():
    """A configuration with wider counters and deeper memories than the model needs: the
    descriptor grows (11 program words instead of 6) and the cycle model follows it."""
    config, lanes, width = CASES["4x4-d8"]
    _check(config, lanes, width, seed=2, images=1,
           widen={"coord_bits": 9, "channel_bits": 20, "spikes_depth": 5000,
                  "program_depth": 1024, "biases_depth": 300, "thresholds_depth": 300,
                  "shifts_depth": 300})


def test_external_weight_ports():
    from amaranth.back import rtlil

    from sdtforge.hdl.accelerator import Accelerator
    from sdtforge.hdl.compile import AccelConfig

    cfg = AccelConfig(lanes=4, width=8, weight_bits=6, weights_depth=512, external_weights=True)
    dut = Accelerator(cfg)
    assert dut.w_req.payload.shape().width == 9
    assert dut.w_rsp.payload.shape().size == 24
    assert dut.w_write.data.shape().size == 24
    assert "top.weights" not in rtlil.convert(dut)
    internal = Accelerator(AccelConfig(weights_depth=64))
    assert "top.weights.reader" in rtlil.convert(internal)
    assert not hasattr(internal, "w_req") and not hasattr(internal, "w_write")
    with pytest.raises(TypeError):
        AccelConfig(external_weights=1)


@pytest.mark.slow
@pytest.mark.parametrize("lanes,width,latency", [(1, 8, 1), (8, 16, 1), (32, 32, 1), (8, 16, 3),
                                                 (32, 32, 3)])
@settings(max_examples=1, deadline=None)
@given(seed=st.integers(0, 2**16), pooling=st.sampled_from(["0001", "1001", "0000"]))
def test_random_models_across_lanes(lanes, width, latency, seed, pooling):
    """Random models at the lane counts the boards use (1 on the iCEBreaker today, 8, 32 on
    the ULX3S, whose stream memory is read through registers: ``latency`` 3): bit-exact, and
    the cycle model equal to the RTL."""
    # As many channels as lanes (at least 8): the simulator's time grows with the groups.
    rng = np.random.default_rng(seed)
    config = tiny_config(img_size=[int(rng.integers(3, 5)), int(rng.integers(3, 5))],
                         embed_dims=max(lanes, 8), T=int(rng.integers(1, 3)),
                         num_classes=int(rng.integers(2, 5)), pooling_stat=pooling)
    _check(config, lanes, width, seed=seed, images=1, stream_latency=latency)


def test_a_stuck_run_fails_at_the_cycle_limit(monkeypatch):
    """The bench's cycle limit ends a run whose results do not come (here: a limit far below
    the image's compute) with an assertion instead of simulating on."""
    from . import _sim
    config, lanes, width = CASES["4x4-d8"]
    model = random_model(config, seed=1, theta_max=4)
    pixels = np.random.default_rng(1).integers(0, 256, (1, 3, 4, 4)).astype(np.uint8)
    monkeypatch.setattr(_sim, "IMAGE_CYCLES", 500)
    # The simulator's testbench coroutine is left waiting; closing it when collected reports
    # an error of Amaranth's own (``aclose()``), which is not this test's.
    monkeypatch.setattr(sys, "unraisablehook", lambda _: None)
    with pytest.raises(AssertionError, match="no result after .* cycles: 0 of 1 images"):
        run_accelerator(compile_model(model, lanes=lanes, width=width), pixels)
    gc.collect()
