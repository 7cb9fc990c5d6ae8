"""One definition per encoding: descriptor views sized by the model, the result format.

The descriptor layout is a function of the configuration (``accel_isa.descriptor_layout``), its
field widths derived from the model like the loop counters, so large models are no longer capped
by fixed field widths; the result stream's format is defined once (``result.decode_result``).
"""

import dataclasses

import numpy as np
import pytest
from amaranth.hdl import Shape, Signal
from amaranth.lib import data

from sdtforge.hdl.accel_isa import (
    Op,
    decode_descriptor,
    descriptor_layout,
    descriptor_widths,
    descriptor_words,
    join_program_words,
    op_view,
    program_words,
    shared_field,
)
from sdtforge.hdl.compile import (
    AccelConfig,
    compile_model,
    derive_config,
    descriptor_words_for,
)
from sdtforge.hdl.result import (
    RESULT_LAYOUT,
    Result,
    decode_result,
    encode_result,
    result_class_word,
    result_words,
)
from sdtforge.model.presets import PRESETS
from sdtforge.quantize.synthetic import random_model, tiny_config
from sdtforge.sim import cosim_debug


def _preset_model(name):
    config = {k: list(v) if isinstance(v, tuple) else v
              for k, v in dataclasses.asdict(PRESETS[name].config).items()}
    return random_model({**config, "weight_bits": 8}, seed=1)


def _width(config, op, name):
    return Shape.cast(op_view(config, op)[name].shape).width


# ---------------------------------------------------------------------------------------------
# Field widths from the model


def test_digits_tiny_descriptor_is_short():
    """The derived fields of a digits-sized model: 8 or 9 program words per descriptor where
    the fixed 249-bit layout took 16."""
    model = random_model(seed=3)
    for lanes, words in ((1, 9), (8, 8)):
        cfg = compile_model(model, lanes=lanes, width=16).config
        assert descriptor_words(cfg) == words
        assert descriptor_words_for(model, lanes, 16) == words
        assert _width(cfg, Op.CONV, "steps") == cfg.step_bits + 1 == 3
        # A map base addresses the spike or the stream memory.
        assert _width(cfg, Op.CONV, "out_base") == max(
            (cfg.spikes_depth - 1).bit_length(), (cfg.stream_depth - 1).bit_length())
        assert _width(cfg, Op.SDSA, "k_base") == (cfg.spikes_depth - 1).bit_length()
        assert _width(cfg, Op.CONV, "w_base") == (cfg.weights_depth - 1).bit_length()


def test_d512_compiles_at_8_lanes():
    """D = 512 at P = 8, W = 16: the MLP's 256 output groups and 2048 input channels no longer
    overflow the former 8-bit ``groups`` / 12-bit ``cin``-sized fields."""
    model = random_model(tiny_config(embed_dims=512), seed=1)
    c = compile_model(model, lanes=8, width=16)
    fc1 = c.program[c.names.index("block0.mlp.fc1")]
    fc2 = c.program[c.names.index("block0.mlp.fc2")]
    assert fc1["groups"] == 256 and fc2["cin"] == 2048
    assert (c.config.group_bits, c.config.channel_bits) == (8, 12)
    assert _width(c.config, Op.CONV, "groups") == 9
    for i, d in enumerate(c.program):
        n = descriptor_words(c.config)
        assert decode_descriptor(c.config, join_program_words(
            c.images["program"][i * n:(i + 1) * n])) == d


def test_imagenet_field_widths():
    """The ImageNet-shaped preset at P = 8, W = 16: every field is as wide as the model needs
    (spike maps past 2**20 words, 6 069 parameter rows, 1 000 classes, 256 groups)."""
    cfg = derive_config(_preset_model("imagenet-8-512"), lanes=8, width=16)
    widths = descriptor_widths(cfg)
    assert (cfg.group_bits, cfg.coord_bits, cfg.channel_bits) == (8, 8, 12)
    assert widths["groups"] == 9 and widths["cin"] == 12
    assert widths["in_base"] == (cfg.spikes_depth - 1).bit_length() > 20
    assert widths["prow"] == (cfg.biases_depth - 1).bit_length() > 12
    assert widths["w_gstride"] == cfg.weights_depth.bit_length()
    assert descriptor_words(cfg) == -(-descriptor_layout(cfg).size // 16)


@pytest.mark.slow
def test_imagenet_compiles_at_8_lanes():
    c = compile_model(_preset_model("imagenet-8-512"), lanes=8, width=16)
    assert c.program[-1] == {"op": Op.END, "classes": 1000}


def test_descriptor_size_follows_the_config():
    """A configuration with wider fields has a longer descriptor; the compiled program and the
    decoder follow it."""
    model = random_model(seed=3)
    small = compile_model(model).config
    wide = dataclasses.replace(small, channel_bits=40, program_depth=4096)
    c = compile_model(model, wide)
    n = descriptor_words(wide)
    assert n > descriptor_words(small)
    assert len(c.images["program"]) == n * len(c.program)
    assert [d for d in cosim_debug.descriptors(c)] == c.program


def test_program_words_round_trip():
    value = (1 << 100) | 0xBEEF
    words = program_words(value, 7)
    assert len(words) == 7 and words[0] == 0xBEEF and words[6] == 1 << 4
    assert join_program_words(words) == value


def test_shared_field_refuses_different_bits():
    layout = descriptor_layout(AccelConfig())
    d = layout(Signal(layout.size))
    assert shared_field(d, conv="in_h", pixel="height") is not None
    with pytest.raises(AssertionError, match="not the same bits"):
        shared_field(d, conv="in_h", pixel="width")


# ---------------------------------------------------------------------------------------------
# The result stream


def test_result_round_trip():
    result = Result(logits=(-5, 0, 2**31 - 1, -2**31), label=2, cycles=123456)
    beats = encode_result(result)
    assert len(beats) == result_words(4) == 6
    assert [last for _, last in beats] == [0, 0, 0, 0, 0, 1]
    assert beats[result_class_word(4)] == (2, 0)
    assert decode_result([w for w, _ in beats], 4) == result
    # The payload as the result port carries it: data in the low 32 bits, then last.
    word = data.Const(RESULT_LAYOUT, beats[-1][0] | 1 << 32)
    assert (word.data, word.last) == (123456, 1)


def test_result_of_the_wrong_length():
    with pytest.raises(ValueError, match="3 result words for 2 classes, expected 4"):
        decode_result([1, 2, 3], 2)


def test_result_logits_are_sign_extended():
    words = [(1 << 32) - 7, 9, 1, 77]
    assert decode_result(np.asarray(words), 2) == Result(logits=(-7, 9), label=1, cycles=77)


# ---------------------------------------------------------------------------------------------
# The spike-map debugger reads the program the way the controller does


def test_spike_watch_decodes_the_program():
    """``cosim --dump-spikes`` finds each spike map from the descriptors decoded out of the
    program image: rows written at those layouts from the golden maps all match, and a flipped
    bit is named at its descriptor."""
    from sdtforge.sim import golden

    config = tiny_config(img_size=[4, 4], embed_dims=8, T=2, num_classes=3)
    model = random_model(config, seed=1, theta_max=4)
    compiled = compile_model(model, lanes=8, width=16)
    pixels = np.random.default_rng(0).integers(0, 256, (1, 1, 4, 4)).astype(np.uint8)
    ref = golden.run(model, pixels, spikes=True)
    watch = cosim_debug.spike_watch(compiled, model)
    # sps.conv0–2, the three stream LIFs, q, k, v, SDSA, fc1, the head's sum.
    assert len(watch) == 12
    pooled = {lay.output for lay in model.layers if getattr(lay, "pool", False)}
    def row_address(entry, t, c, y, x):
        return (t << entry["sht"]) | (y << entry["shy"]) | (x << entry["shx"]) | (c // 16)

    dump = {}
    for entry in watch:
        s = cosim_debug._golden_map(entry["map"], ref, 0, pooled)
        # Rows between the map's positions (power-of-two strides) are never written: x.
        rows = [None] * entry["rows"]
        for position in np.ndindex(*s.shape):
            rows[row_address(entry, *position)] = 0
        for t, c, y, x in zip(*np.nonzero(s), strict=True):
            rows[row_address(entry, t, c, y, x)] |= 1 << (c % 16)
        dump[str(entry["op"])] = ["x" * 16 if r is None else f"{r:016b}" for r in rows]
    assert cosim_debug.compare_spikes([dump], watch, ref, model, 16) == [
        f"image 0: all {len(watch)} spike maps match the golden model"]
    entry = watch[2]
    rows = dump[str(entry["op"])]
    row0 = rows[0]
    spikes = int(np.prod(entry["shape"]))
    # A flipped bit, and an undefined one at a map position, are named at their descriptor.
    for changed in (row0[:-1] + ("1" if row0[-1] == "0" else "0"), row0[:-1] + "x"):
        dump[str(entry["op"])] = [changed, *rows[1:]]
        assert cosim_debug.compare_spikes([dump], watch, ref, model, 16) == [
            f"image 0: spikes first differ at descriptor {entry['op']} ({entry['map']}): 1 of "
            f"{spikes} spikes differ"]
    del dump[str(entry["op"])]
    assert cosim_debug.compare_spikes([dump], watch, ref, model, 16) == [
        f"image 0: descriptor {entry['op']} ({entry['map']}) was not read"]
