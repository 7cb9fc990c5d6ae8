"""Every value the compiler packs into a hardware field is range-checked (no silent truncation).

One test per kind of field: each class of descriptor field, each memory row kind and the
load-record header. Each builds a small model with a value just inside the field's range (it
compiles) and one just outside (a :class:`UserError` naming the layer, the field, the value and
the range). Descriptor fields are as wide as the configuration makes them (``descriptor_widths``):
a derived configuration holds every value of its model, and a given one too narrow for a model is
refused before anything is encoded; every field of every operation's view is also checked on the
encoder directly (``test_every_descriptor_field_is_checked``).
"""

import dataclasses
import re

import numpy as np
import pytest
from amaranth.hdl import Shape

from sdtforge.cli import main
from sdtforge.errors import UserError
from sdtforge.hdl.accel_isa import (
    OP_VIEWS,
    PROGRAM_WORD_BITS,
    RECORD_HEADER_BYTES,
    Op,
    Target,
    decode_descriptor,
    descriptor_layout,
    descriptor_words,
    field_range,
    op_view,
)
from sdtforge.hdl.compile import (
    AccelConfig,
    compile_model,
    encode_descriptor,
    load_stream_bytes,
    pack_memory_row,
    pack_row,
    record_header,
)
from sdtforge.quantize import ir
from sdtforge.quantize.synthetic import random_model, tiny_config


def _small(seed=1, **overrides):
    config = {"img_size": [4, 4], "embed_dims": 8, "T": 2, "num_classes": 3, **overrides}
    return random_model(tiny_config(**config), seed=seed)


def _refused(model, text, **kw):
    """Compile ``model``; the UserError must contain ``text`` (a literal string)."""
    with pytest.raises(UserError, match=re.escape(text)):
        compile_model(model, **kw)


def _op(compiled, name):
    return compiled.program[compiled.names.index(name)]


# ---------------------------------------------------------------------------------------------
# Descriptor fields


def _with_sdsa_theta(theta):
    model = _small()
    sdsa = model.layer("block0.attn.sdsa")
    sdsa.theta = theta
    sdsa.stateless_or = ir.stateless_or_holds(theta, sdsa.shift)
    return ir.finalize(model)


def test_descriptor_signed_field_sdsa_theta():
    """The issue's case: θ = 2**15 was cut to -32768 in the 16-bit signed field."""
    c = compile_model(_with_sdsa_theta(2**15 - 1))
    assert _op(c, "block0.attn.sdsa")["theta"] == 2**15 - 1
    _refused(_with_sdsa_theta(2**15),
             "layer block0.attn.sdsa: SDSA descriptor field 'theta' = 32768 does not fit its "
             "16-bit signed field (-32768..32767)")


def test_sdsa_theta_out_of_range_fails_generate(tmp_path, capsys):
    path = tmp_path / "big-theta.sfm"
    ir.save(_with_sdsa_theta(2**15), path)
    assert main(["generate", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "'theta' = 32768" in err and "(-32768..32767)" in err
    assert "\n" not in err
    assert not (tmp_path / "out" / "load.bin").exists()


def _narrower(config, **fields):
    return dataclasses.replace(config, **fields)


@pytest.mark.parametrize("option, good, bad, view", [
    # Counts: time steps, map geometry. 256, which the former 8-bit fields refused, fits the
    # 9-bit field of an 8-bit counter; a derived configuration holds any count, a given one
    # refuses a model that needs a wider counter.
    ("step_bits", {"T": 256}, {"T": 257}, "steps"),
    ("coord_bits", {"img_size": [256, 2]}, {"img_size": [257, 2]}, "height"),
])
def test_descriptor_count_fields(option, good, bad, view):
    small = compile_model(_small(**good))
    value = bad.get("T") or bad["img_size"][0]
    assert _op(small, "sps.conv0")[view] == value - 1
    assert getattr(small.config, option) == 8
    assert Shape.cast(op_view(small.config, Op.PIXEL)[view].shape).width == 9
    big = compile_model(_small(**bad))
    assert _op(big, "sps.conv0")[view] == value
    assert getattr(big.config, option) == 9
    assert Shape.cast(op_view(big.config, Op.PIXEL)[view].shape).width == 10
    _refused(_small(**bad), f"the model needs {option}=9 but the hardware has 8",
             config=_narrower(big.config, **{option: 8}))


def test_descriptor_channel_field():
    """``END``'s ``classes`` (the ``cin`` bits) grow with the class count; a given
    ``channel_bits`` too narrow is refused (32 lanes keep the groups small)."""
    c = compile_model(_small(num_classes=4095), lanes=32, width=32)
    assert c.program[-1] == {"op": Op.END, "classes": 4095}
    assert c.config.channel_bits == 12
    c = compile_model(_small(num_classes=4096), lanes=32, width=32)
    assert c.program[-1]["classes"] == 4096 and c.config.channel_bits == 13
    _refused(_small(num_classes=4096), "the model needs channel_bits=13 but the hardware has 12",
             config=_narrower(c.config, channel_bits=12))


def test_descriptor_base_fields():
    """Spike map bases are as wide as the spike memory's address: ``sps.lif1`` is placed after
    ``sps.lif0`` (T · 128 · 64 words), 2**20 at T = 128, past the former 20-bit field."""
    c = compile_model(_small(img_size=[128, 64], T=128))
    assert _op(c, "sps.conv1")["out_base"] == 128 * 128 * 64 == 2**20
    width = Shape.cast(op_view(c.config, Op.CONV)["out_base"].shape).width
    assert width == (c.config.spikes_depth - 1).bit_length() > 20
    # A given configuration whose spike memory is too small is refused for its memory, before
    # any descriptor is encoded.
    _refused(_small(img_size=[128, 64], T=128),
             "of the spikes memory but the hardware has 1048576 rows",
             config=_narrower(c.config, spikes_depth=2**20))


def _encode_cases():
    """``(op, field)`` of every field of every operation's view."""
    return [(op, name) for op in Op for name in OP_VIEWS[op]]


@pytest.mark.parametrize("op, name", _encode_cases(),
                         ids=[f"{op.name}.{name}" for op, name in _encode_cases()])
def test_every_descriptor_field_is_checked(op, name):
    """Each field encodes its whole range through its view, decodes back, refuses beyond."""
    config = AccelConfig()
    f = op_view(config, op)[name]
    shape = Shape.cast(f.shape)
    lo, hi = field_range(shape.width, shape.signed)
    for value in (lo, hi):
        word = encode_descriptor({"op": op, name: value}, config)
        assert (word >> f.offset) & ((1 << shape.width) - 1) == value & ((1 << shape.width) - 1)
        decoded = decode_descriptor(config, word)
        assert decoded["op"] == op
        assert int(getattr(decoded[name], "value", decoded[name])) == value
    kind = "signed" if shape.signed else "unsigned"
    for value in (lo - 1, hi + 1):
        with pytest.raises(UserError, match=re.escape(
                f"layer x.y: {op.name} descriptor field {name!r} = {value} does not fit its "
                f"{shape.width}-bit {kind} field ({lo}..{hi})")):
            encode_descriptor({"op": op, name: value}, config, layer="x.y")


def test_a_field_the_view_lacks_is_refused():
    """The encoder writes only through the operation's view: another view's field is a
    programming error, never silently dropped."""
    with pytest.raises(AssertionError, match="SDSA descriptor has no field w_base"):
        encode_descriptor({"op": Op.SDSA, "w_base": 1}, AccelConfig())


def test_views_share_the_header():
    """A field two views both name under one meaning is the same bits in each (the controller's
    shared logic reads one signal); the tails overlap (SDSA's maps and threshold share the bits
    of the other operations' parameter rows)."""
    layout = descriptor_layout(AccelConfig())
    members = layout.members
    assert members["conv"]["in_h"].offset == members["pixel"]["height"].offset
    assert members["pool_or"]["words"].offset == members["conv"]["groups"].offset
    assert members["end"]["classes"].offset == members["conv"]["cin"].offset
    assert members["sdsa"]["k_base"].offset == members["conv"]["prow"].offset
    views = [v for v in members if v != "op"]
    assert all(members[v]["op"].offset == 0 for v in views)
    assert all(members[v].size == layout.size for v in views)


# ---------------------------------------------------------------------------------------------
# Memory rows (the derived widths come from the model's declared widths; a value edited past
# them, without re-deriving, is what a wrong model or a too-narrow configuration looks like)


def _edit(layer_name, array, index, value, model=None):
    model = _small() if model is None else model
    layer = model.layer(layer_name)
    a = np.asarray(getattr(layer, array)).astype(np.int64)
    a[index] = value
    setattr(layer, array, a)
    return model


def _row_message(layer, memory, lane, value, bits, signed):
    lo, hi = field_range(bits, signed)
    kind = "signed" if signed else "unsigned"
    return (f"layer {layer}: {memory} row lane {lane} = {value} does not fit its {bits}-bit "
            f"{kind} field ({lo}..{hi})")


def test_weight_rows():
    compile_model(_edit("block0.attn.q", "weight", (2, 5), 127))
    compile_model(_edit("block0.attn.q", "weight", (2, 5), -128))
    _refused(_edit("block0.attn.q", "weight", (2, 5), 128),
             _row_message("block0.attn.q", "weights", 2, 128, 8, True)
             + "; the weights lanes are weight_bits=8 bits wide")
    _refused(_edit("block0.attn.q", "weight", (0, 0), -129),
             _row_message("block0.attn.q", "weights", 0, -129, 8, True))


def test_bias_rows():
    bits = compile_model(_small()).config.acc_bits
    top = (1 << (bits - 1)) - 1
    compile_model(_edit("block0.attn.q", "bias", 3, top))
    _refused(_edit("block0.attn.q", "bias", 3, top + 1),
             _row_message("block0.attn.q", "biases", 3, top + 1, bits, True))


def test_threshold_rows():
    bits = compile_model(_small()).config.theta_bits
    top = (1 << (bits - 1)) - 1
    compile_model(_edit("sps.lif3", "theta", 5, top))
    _refused(_edit("sps.lif3", "theta", 5, top + 1),
             _row_message("sps.lif3", "thresholds", 5, top + 1, bits, True)
             + "; the thresholds lanes are theta_bits=")


def test_shift_rows():
    """Shifts are unsigned: the width follows the largest shift, so a negative one overflows."""
    compile_model(_edit("sps.rpe", "shift", 1, 0))
    bits = compile_model(_small()).config.shift_bits
    _refused(_edit("sps.rpe", "shift", 1, -1), _row_message("sps.rpe", "shifts", 1, -1, bits,
                                                            False))


def test_pixel_rows():
    """The pixel memory's zero-point rows are unsigned bytes."""
    c = compile_model(_edit("sps.conv0", "zero_point", 0, 255))
    assert c.images["pixels"] == [255]
    _refused(_edit("sps.conv0", "zero_point", 0, 256),
             _row_message("sps.conv0", "pixels", 0, 256, 8, False))
    _refused(_edit("sps.conv0", "zero_point", 0, -1),
             _row_message("sps.conv0", "pixels", 0, -1, 8, False))


def test_program_rows():
    """Program words are unsigned ``PROGRAM_WORD_BITS``-bit rows (built from checked fields)."""
    c = compile_model(_small())
    assert len(c.images["program"]) == len(c.program) * descriptor_words(c.config)
    top = (1 << PROGRAM_WORD_BITS) - 1
    assert pack_memory_row(c.config, "program", [top], layer="end") == top
    with pytest.raises(UserError, match=re.escape(
            f"layer end: program row lane 0 = {top + 1} does not fit its 16-bit unsigned field")):
        pack_memory_row(c.config, "program", [top + 1], layer="end")


def test_rows_of_a_given_config_are_checked():
    """A model whose declared widths understate a value, against an explicit configuration."""
    model = _edit("block0.attn.q", "bias", 0, 1 << 19)
    cfg = compile_model(_small()).config
    _refused(model, _row_message("block0.attn.q", "biases", 0, 1 << 19, cfg.acc_bits, True),
             config=cfg)


# ---------------------------------------------------------------------------------------------
# Load-record header and rows


def test_load_record_header():
    c = compile_model(_small())
    c.pixel_layout["pad_base"] = 2**32 - 1
    stream = load_stream_bytes(c)
    pixels = stream.rindex(bytes([Target.PIXELS.value]) + (2**32 - 1).to_bytes(4, "little"))
    assert stream[pixels + 5:pixels + RECORD_HEADER_BYTES] == (1).to_bytes(4, "little")
    c.pixel_layout["pad_base"] = 2**32
    with pytest.raises(UserError, match=re.escape(
            "load record PIXELS: header field 'address' = 4294967296 does not fit its 32-bit "
            "unsigned field (0..4294967295)")):
        load_stream_bytes(c)
    assert len(record_header(Target.WEIGHTS, 0, 2**32 - 1)) == RECORD_HEADER_BYTES
    with pytest.raises(UserError, match=re.escape(
            "load record WEIGHTS: header field 'count' = 4294967296 does not fit")):
        record_header(Target.WEIGHTS, 0, 2**32)


def test_load_record_rows():
    c = compile_model(_small())
    bits = c.config.row_bits("weights")
    c.images["weights"][4] = (1 << bits) - 1
    load_stream_bytes(c)
    c.images["weights"][4] = 1 << bits
    with pytest.raises(UserError, match=re.escape(
            f"load record WEIGHTS: row 4 = {1 << bits} does not fit its {bits}-bit unsigned")):
        load_stream_bytes(c)


def test_row_widths_unchanged():
    """``row_bits`` is the lane count times the lane width of :meth:`AccelConfig.lane_format`."""
    cfg = AccelConfig()
    assert {m: cfg.row_bits(m) for m in ("program", "weights", "biases", "thresholds", "shifts",
                                         "pixels", "spikes", "stream", "logits")} == {
        "program": 16, "weights": 64, "biases": 192, "thresholds": 192, "shifts": 24,
        "pixels": 8, "spikes": 16, "stream": 192, "logits": 256}


@pytest.mark.parametrize("memory", ["program", "weights", "biases", "thresholds", "shifts",
                                    "pixels", "spikes", "stream", "logits"])
def test_rows_pack_through_the_lane_layout(memory):
    """A packed row is the constant of the ArrayLayout the accelerator builds the memory with,
    for the extreme lane values; the lane's range is its layout's."""
    cfg = compile_model(_small()).config
    layout = cfg.lane_layout(memory)
    lo, hi = field_range(layout.elem_shape.width, layout.elem_shape.signed)
    values = [(lo, hi)[i % 2] for i in range(layout.length)]
    assert pack_memory_row(cfg, memory, values) == layout.const(values).as_bits()
    assert pack_row(values, layout) == layout.const(values).as_bits()
    assert cfg.row_bits(memory) == layout.size
    with pytest.raises(UserError, match=f"{memory} row lane 0 = {hi + 1} does not fit"):
        pack_memory_row(cfg, memory, [hi + 1])


@pytest.mark.slow
def test_sdsa_theta_at_the_boundary_runs_bit_exact():
    """θ = 2**15 - 1, the largest the field holds, reaches the SDSA unit unchanged."""
    from sdtforge.sim import golden

    from ._sim import run_accelerator

    model = _with_sdsa_theta(2**15 - 1)
    pixels = np.random.default_rng(0).integers(0, 256, (1, 1, 4, 4)).astype(np.uint8)
    got = run_accelerator(compile_model(model), pixels)
    assert [logits for logits, _, _ in got] == golden.run(model, pixels).logits.tolist()
