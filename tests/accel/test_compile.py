"""Compiler, memory planner, load-stream encoder and ``sdtforge generate``."""

import pytest

from sdtforge.cli import main
from sdtforge.errors import UserError
from sdtforge.hdl.accel_isa import (
    PROGRAM_WORD_BITS,
    Op,
    decode_descriptor,
    descriptor_layout,
    descriptor_words,
    join_program_words,
)
from sdtforge.hdl.compile import (
    AccelConfig,
    compile_model,
    encode_descriptor,
    format_memory_table,
    load_stream_bytes,
)
from sdtforge.quantize import ir
from sdtforge.quantize.synthetic import random_model, tiny_config


@pytest.fixture(scope="module")
def tiny():
    return random_model(seed=3)


def test_program_shape(tiny):
    c = compile_model(tiny)
    ops = [d["op"] for d in c.program]
    assert ops[0] == Op.PIXEL and ops[-1] == Op.END
    assert ops.count(Op.SDSA) == 1 and ops.count(Op.HEAD_SUM) == 1
    assert c.needed["weights"] == sum(
        -(-lay.weight.shape[0] // 8) * lay.weight[0].size
        for lay in tiny.layers if hasattr(lay, "weight"))
    n = descriptor_words(c.config)
    assert len(c.images["program"]) == len(c.program) * n == c.needed["program"]
    assert all(0 <= w < (1 << PROGRAM_WORD_BITS) for w in c.images["program"])
    # The words of each descriptor, lowest first, rebuild its encoding, which decodes (through
    # the operation's view) to the compiler's fields.
    words = c.images["program"]
    for i, d in enumerate(c.program):
        value = join_program_words(words[i * n:(i + 1) * n])
        assert value == encode_descriptor(d, c.config)
        assert value < (1 << descriptor_layout(c.config).size)
        assert decode_descriptor(c.config, value) == d
    assert "spikes" in format_memory_table(c)


def test_deterministic(tiny):
    a = compile_model(tiny)
    b = compile_model(random_model(seed=3))
    assert load_stream_bytes(a) == load_stream_bytes(b)
    assert a.listing() == b.listing()
    assert a.config.to_json() == b.config.to_json()


def test_spike_maps_do_not_overlap_while_live(tiny):
    c = compile_model(tiny)
    q, k, v = (c.maps[f"block0.attn.{x}"] for x in "qkv")
    spans = sorted((m[0], m[0] + 1) for m in (q, k, v))
    assert len({s for s, _ in spans}) == 3


def test_model_too_big(tiny):
    cfg = AccelConfig(weights_depth=1000)
    with pytest.raises(UserError, match=r"weights memory .* 1000 rows \(64000 bits\)"):
        compile_model(tiny, cfg)


def test_config_checks():
    with pytest.raises(UserError, match="^lanes must be a power of two, not 6$"):
        AccelConfig(lanes=6)
    with pytest.raises(UserError, match="must not exceed the word width"):
        AccelConfig(lanes=32, width=16)
    with pytest.raises(UserError, match="^width must be at least 8, not 4$"):
        AccelConfig(lanes=4, width=4)
    with pytest.raises(UserError, match="^weights_depth must be positive, not 0$"):
        AccelConfig(weights_depth=0)
    # A programming error (a wrong type) stays a TypeError.
    with pytest.raises(TypeError, match="lanes must be an integer"):
        AccelConfig(lanes=8.0)
    assert AccelConfig.from_json(AccelConfig().to_json()) == AccelConfig()
    with pytest.raises(UserError, match=r"writeback_cycles must be a power of two dividing "
                                        r"lanes \(8\), not 16"):
        AccelConfig(lanes=8, writeback_cycles=16)
    with pytest.raises(UserError, match="writeback_cycles must be a power of two"):
        AccelConfig(lanes=8, writeback_cycles=3)
    with pytest.raises(UserError, match="^events must be 1 or 2, not 3$"):
        AccelConfig(events=3)
    # Two events per command: with external weights (two SPRAM copies) and with the SDRAM
    # prefetch (its window's two ports).
    assert AccelConfig(events=2, external_weights=True).events == 2
    assert AccelConfig(events=2, external_weights=True, weight_tile_rows=64).events == 2


def test_writeback_lanes(tiny):
    assert compile_model(tiny, lanes=8, writeback_lanes=2).config.writeback_cycles == 4
    assert compile_model(tiny, lanes=8).config.writeback_cycles == 1
    with pytest.raises(UserError, match="lanes must be a power of two dividing the lanes"):
        compile_model(tiny, lanes=4, writeback_lanes=8)


def test_parameter_rows_of_a_lane_serial_writeback(tiny):
    """With ``writeback_cycles = c`` a group's ``P`` biases and thresholds are ``c`` rows of
    ``P / c`` lanes (row ``prow · c + k`` holds lanes ``k·P/c …``), the shifts one row of ``P``;
    ``prow`` counts groups either way."""
    from sdtforge.hdl.load_image import lane_fields

    def unpack_row(row, layout):
        bits, signed, offsets = lane_fields(layout)
        values = [(int(row) >> o) & ((1 << bits) - 1) for o in offsets]
        return [v - (1 << bits) if signed and v >> (bits - 1) else v for v in values]

    whole = compile_model(tiny, lanes=8)
    serial = compile_model(tiny, lanes=8, writeback_lanes=2)
    cfg = serial.config
    assert (cfg.chunk_lanes, cfg.writeback_bias, whole.config.writeback_bias) == (2, True, False)
    assert cfg.lane_layout("biases").length == cfg.lane_layout("thresholds").length == 2
    assert cfg.lane_layout("shifts").length == 8
    for name in ("biases", "thresholds"):
        rows = [unpack_row(r, whole.config.lane_layout(name)) for r in whole.images[name]]
        chunks = [unpack_row(r, cfg.lane_layout(name)) for r in serial.images[name]]
        assert len(chunks) == 4 * len(rows)
        assert sum(chunks, []) == sum(rows, []) and any(v != 0 for v in sum(rows, []))
    assert serial.images["shifts"] == whole.images["shifts"]


@pytest.mark.parametrize("text, message", [
    ("{", "not valid JSON"),
    ("[8]", "must be a JSON object"),
    ('{"lanes": 8, "speed": 3}', "unknown fields speed"),
    ('{"lanes": "8"}', "AccelConfig.lanes must be an integer"),
    ('{"lanes": 3}', "lanes must be a power of two, not 3"),
])
def test_config_file_errors_are_user_errors(text, message):
    with pytest.raises(UserError, match=message):
        AccelConfig.from_json(text)


@pytest.mark.parametrize("lanes, width, message", [
    (3, 16, "lanes must be a power of two, not 3"),
    (8, 0, "width must be a power of two, not 0"),
    (8, 12, "width must be a power of two, not 12"),
    (16, 8, r"lanes \(16\) must not exceed the word width \(8\)"),
])
def test_bad_lanes_width_are_user_errors(tiny, lanes, width, message):
    with pytest.raises(UserError, match=message):
        compile_model(tiny, lanes=lanes, width=width)


def test_config_that_does_not_match_is_a_user_error(tiny):
    narrow = AccelConfig(weight_bits=6)
    with pytest.raises(UserError, match="the model needs weight_bits=8 but the hardware has 6"):
        compile_model(tiny, narrow)


def test_generate_cli(tmp_path, capsys):
    model = tmp_path / "m.sfm"
    ir.save(random_model(tiny_config(img_size=[4, 4], embed_dims=8, T=2, num_classes=3),
                         seed=1), model)
    assert main(["generate", str(model), "--out", str(tmp_path / "a")]) == 0
    assert "weights" in capsys.readouterr().out
    assert main(["generate", str(model), "--out", str(tmp_path / "b")]) == 0
    for f in sorted((tmp_path / "a").iterdir()):
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes(), f.name
    text = (tmp_path / "a" / "sdtforge_accel.v").read_text()
    assert str(tmp_path) not in text
    for op in ("$mul", "$div", " * ", " / "):
        assert op not in text
    assert main(["generate", str(model), "--out", str(tmp_path / "c"), "--lanes", "6"]) == 2
