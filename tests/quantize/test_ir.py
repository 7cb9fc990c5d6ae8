"""The .sfm file: round trip, determinism, validation naming the field, fuzzing."""

import io
import json
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sdtforge.errors import UserError
from sdtforge.quantize import ir, synthetic


@pytest.fixture(scope="module")
def model():
    return synthetic.random_model(seed=3)


@pytest.fixture(scope="module")
def blob(model):
    return ir.dumps(model)


def test_round_trip_and_determinism(model, blob, tmp_path):
    path = ir.save(model, tmp_path / "m.sfm")
    again = ir.load(path)
    assert path.read_bytes() == blob
    assert ir.dumps(again) == blob
    assert again.config == model.config
    assert [la.KIND for la in again.layers] == [la.KIND for la in model.layers]
    for a, b in zip(again.layers, model.layers, strict=True):
        for key in a.ARRAYS:
            assert np.array_equal(getattr(a, key), getattr(b, key))
        assert a.widths == b.widths
    assert np.array_equal(again.zero_points, model.zero_points)
    assert issubclass(ir.IRError, UserError)


def test_same_model_same_bytes():
    assert ir.dumps(synthetic.random_model(seed=5)) == ir.dumps(synthetic.random_model(seed=5))


def test_layer_kinds_and_dataflow(model):
    kinds = [la.KIND for la in model.layers]
    assert kinds[:6] == ["conv3x3_pixel", "conv3x3_spike", "conv3x3_spike", "stream_conv3x3",
                         "stream_lif", "stream_conv3x3"]
    assert kinds[-1] == "head"
    sdsa = model.layer("block0.attn.sdsa")
    assert sdsa.stateless_or and sdsa.theta == 1 and sdsa.shift == 1


def _rewrite(blob, edit_header=None, edit_arrays=None):
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        entries = {n[:-4]: np.load(io.BytesIO(zf.read(n))) for n in zf.namelist()}
    header = json.loads(entries["header"].tobytes())
    if edit_header:
        edit_header(header)
    if edit_arrays:
        edit_arrays(entries)
    entries["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, arr in entries.items():
            b = io.BytesIO()
            np.save(b, arr)
            zf.writestr(name + ".npy", b.getvalue())
    return buf.getvalue()


def _set(path, value):
    def edit(h):
        obj = h
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value
    return edit


@pytest.mark.parametrize("edit, field", [
    (_set(["version"], 2), "version"),
    (_set(["format"], "other"), "format"),
    (_set(["config", "embed_dims"], 48), "layers"),
    (_set(["config", "T"], "4"), "config.T"),
    (_set(["layers", 0, "kind"], "conv1x1"), "layers[0].kind"),
    (_set(["layers", 3, "widths", "stream"], 3), "sps.conv3.widths.stream"),
    (_set(["layers", 10, "stateless_or"], False), "stateless_or"),
    (_set(["stream", "bits"], 2), "stream.bits"),
    (_set(["provenance", "checkpoint_sha256"], 5), "provenance.checkpoint_sha256"),
])
def test_tampered_header_names_the_field(blob, edit, field):
    pattern = field.replace("[", ".").replace("]", ".")
    with pytest.raises(ir.IRError, match=f"field '[^']*{pattern}"):
        ir.loads(_rewrite(blob, edit_header=edit))


@pytest.mark.parametrize("entry, value, field", [
    ("layers/001/weight", lambda a: np.full_like(a, -128), "sps.conv1.+weight"),
    ("layers/001/theta", lambda a: np.zeros_like(a), "sps.conv1.+theta"),
    ("layers/001/bias", lambda a: a.astype(np.int32), "sps.conv1.+bias"),
    ("layers/002/weight", lambda a: a[:-1], "sps.conv2.+weight"),
])
def test_tampered_arrays_name_the_field(blob, entry, value, field):
    def edit(entries):
        entries[entry] = value(entries[entry])
    with pytest.raises(ir.IRError, match=field):
        ir.loads(_rewrite(blob, edit_arrays=edit))


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(ir.IRError, match="cannot read"):
        ir.load(tmp_path / "absent.sfm")
    (tmp_path / "g.sfm").write_bytes(b"not a zip at all")
    with pytest.raises(ir.IRError, match="not a readable"):
        ir.load(tmp_path / "g.sfm")


@given(st.data())
def test_fuzz_byte_flips_and_truncation(blob, data):
    raw = bytearray(blob)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= data.draw(st.integers(1, 255))
    if data.draw(st.booleans()):
        raw = raw[:data.draw(st.integers(0, len(raw)))]
    try:
        ir.loads(bytes(raw))
    except ir.IRError:
        pass


@given(st.integers(0, 10_000))
def test_fuzz_truncation_always_fails_cleanly(blob, cut):
    with pytest.raises(ir.IRError):
        ir.loads(blob[:min(cut, len(blob) - 1)])


def test_derived_widths_are_tight_lower_bounds(model):
    widths, stream_bits = ir.derive_widths(model)
    assert stream_bits == model.stream_bits
    assert ir.signed_width(0, 0) == 1
    assert ir.signed_width(-128, 127) == 8
    assert ir.signed_width(-129, 0) == 9
    assert ir.signed_width(0, 128) == 9
