"""The .sfm file: round trip, determinism, validation naming the field, fuzzing."""

import dataclasses
import io
import json
import re
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from _zip import deflate as _bomb
from _zip import entries as _entries
from _zip import npy as _npy
from _zip import raw_zip as _raw_zip
from _zip import zip_entries as _zip
from hypothesis import given
from hypothesis import strategies as st

from sdtforge.errors import UserError
from sdtforge.model.presets import INTEGER_PRESETS, PRESETS
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
    (_set(["layers", 0, "kind"], "conv1x1"), "layers[0]"),
    (_set(["layers", 0, "kind"], "lstm"), "layers[0].kind"),
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


# ---------------------------------------------------------------------------------------------
# Hardened loading: bounded sizes, no trailing bytes, no unknown entries, resource limits


def _with_header(blob, edit):
    entries = _entries(blob)
    header = json.loads(np.load(io.BytesIO(entries["header"])).tobytes())
    edit(header)
    entries["header"] = _npy(np.frombuffer(json.dumps(header).encode(), np.uint8))
    return _zip(entries)


def _members(entries):
    out = []
    for name, raw in entries.items():
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        out.append((name + ".npy", zipfile.ZIP_DEFLATED, c.compress(raw) + c.flush(),
                    zlib.crc32(raw), len(raw)))
    return out


def _peak(fn):
    """``(result or raised IRError, tracemalloc peak in bytes)`` of ``fn()``."""
    tracemalloc.start()
    try:
        try:
            result = fn()
        except ir.IRError as exc:
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_hand_built_zip_reads_like_zipfile(blob, model):
    again = ir.loads(_raw_zip(_members(_entries(blob))))
    assert ir.dumps(again) == blob


@pytest.mark.parametrize("lie", [False, True])
def test_zip_bomb_entry_is_never_inflated(blob, model, lie):
    """130 kB of DEFLATE that inflates to 128 MiB behind a valid weight header: refused
    (honest size) or cut at the declared size (forged size), and memory stays small."""
    entries = _entries(blob)
    name = "layers/001/weight"
    comp, crc = _bomb(entries[name], 128 << 20)
    assert len(comp) < 1 << 20
    members = [m for m in _members(entries) if m[0] != name + ".npy"]
    size = len(entries[name])
    if lie:  # the central directory declares the true .npy size and its CRC
        members.append((name + ".npy", zipfile.ZIP_DEFLATED, comp, zlib.crc32(entries[name]),
                        size))
    else:
        members.append((name + ".npy", zipfile.ZIP_DEFLATED, comp, crc, size + (128 << 20)))
    result, peak = _peak(lambda: ir.loads(_raw_zip(members)))
    assert peak < 32 << 20
    if lie:  # bytes past the declared size are never decompressed, so never seen
        assert isinstance(result, ir.IntegerModel) and ir.dumps(result) == blob
    else:
        assert isinstance(result, ir.IRError)
        assert re.search(r"field 'layers\[1\] \(sps\.conv1\)\.weight'.*trailing bytes",
                         str(result))


def test_oversized_declared_header_is_refused(blob):
    entries = _entries(blob)
    comp, crc = _bomb(_npy(np.zeros(64 << 20, np.uint8))[:128], 64 << 20)
    members = [m for m in _members(entries) if m[0] != "header.npy"]
    members.append(("header.npy", zipfile.ZIP_DEFLATED, comp, crc, 128 + (64 << 20)))
    result, peak = _peak(lambda: ir.loads(_raw_zip(members)))
    assert peak < 16 << 20
    assert re.search(r"field 'header': holds 67108864 bytes, more than the 1 MiB limit",
                     str(result))


def test_header_too_big(blob):
    def pad(h):
        h["provenance"]["notes"] = "x" * (ir.MAX_HEADER_BYTES + 1)
    with pytest.raises(ir.IRError, match="field 'header': holds .* bytes, more than the 1 MiB"):
        ir.loads(_with_header(blob, pad))


@pytest.mark.parametrize("edit, message", [
    (lambda raw: raw + b"\0" * 7, "7 trailing bytes"),
    (lambda raw: raw[:-1], "truncated"),
    (lambda raw: raw[:40], "not a readable .npy array"),
    (lambda raw: raw.replace(b"'fortran_order': False", b"'fortran_order': True ", 1), None),
])
def test_entry_size_must_match_its_npy_header(blob, edit, message):
    entries = _entries(blob)
    entries["layers/001/weight"] = edit(entries["layers/001/weight"])
    data = _zip(entries)
    if message is None:  # a Fortran-order entry of the right shape reads (transposed data)
        w = ir.loads(data).layer("sps.conv1").weight
        want = np.load(io.BytesIO(entries["layers/001/weight"]))
        assert np.array_equal(w, want)
        return
    with pytest.raises(ir.IRError, match=r"field 'layers\[1\] \(sps\.conv1\)\.weight'.*"
                       + message):
        ir.loads(data)


def test_wrong_dtype_or_shape_is_named_before_any_data_is_read(blob):
    entries = _entries(blob)
    big = _npy(np.zeros((64, 8, 3, 3), np.int8))
    entries["layers/001/weight"] = big
    with pytest.raises(ir.IRError, match=r"sps\.conv1\)\.weight': shape \(64, 8, 3, 3\) but"):
        ir.loads(_zip(entries))
    entries["layers/001/weight"] = _npy(np.zeros(4, ">i8"))
    with pytest.raises(ir.IRError, match=r"sps\.conv1\)\.weight': dtype >i8 but int8"):
        ir.loads(_zip(entries))


@pytest.mark.parametrize("name, message", [
    ("extra", "unreferenced entries"),
    ("layers/001/weight2", "unreferenced entries"),
])
def test_unknown_entry_is_refused(blob, name, message):
    entries = _entries(blob)
    entries[name] = _npy(np.zeros(3, np.int8))
    with pytest.raises(ir.IRError, match=message):
        ir.loads(_zip(entries))


def test_a_float_checkpoint_is_named_as_such(tmp_path):
    import torch

    path = tmp_path / "model.pt"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(ir.IRError, match=r"a float checkpoint \(torch file\), not an integer "
                                         r"model; make one with `sdtforge quantize"):
        ir.load(path)


def test_bad_archives_are_refused(blob, monkeypatch):
    entries = _entries(blob)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, raw in entries.items():
            zf.writestr(name + ".npy", raw)
        zf.writestr("README.txt", b"hi")
    with pytest.raises(ir.IRError, match="unexpected entry 'README.txt'"):
        ir.loads(buf.getvalue())
    with pytest.raises(ir.IRError, match="compression method 12"):
        ir.loads(_zip(entries, zipfile.ZIP_BZIP2))
    members = _members(entries)
    with pytest.raises(ir.IRError, match="duplicate entry"):
        ir.loads(_raw_zip(members + members[:1]))
    monkeypatch.setattr(ir, "_MAX_ENTRIES", 10)
    with pytest.raises(ir.IRError, match="more than 10 entries"):
        ir.loads(blob)


def test_load_reads_at_most_max_file_bytes(blob, tmp_path, monkeypatch):
    path = tmp_path / "m.sfm"
    path.write_bytes(blob + b"\0" * 100)
    monkeypatch.setattr(ir, "MAX_FILE_BYTES", len(blob) + 99)
    with pytest.raises(ir.IRError, match=r"larger than 0 MiB, the largest integer model"):
        ir.load(path)
    if Path("/dev/zero").exists():
        with pytest.raises(ir.IRError, match="largest integer model"):
            ir.load("/dev/zero")


@pytest.mark.parametrize("edit, message", [
    (_set(["config", "T"], 65536), r"field 'config\.T': is 65536, outside the supported "
                                   r"range 1\.\.256"),
    (_set(["config", "embed_dims"], 1 << 40), r"config\.embed_dims': is 1099511627776, outside"),
    (_set(["config", "img_size"], [1 << 30, 8]), r"config\.img_size': must be \[height, width\]"),
    (_set(["config", "depths"], 10 ** 6), r"config\.depths': is 1000000, outside .*1\.\.64"),
    (_set(["config", "num_classes"], 0), r"config\.num_classes': is 0, outside"),
    (_set(["config", "mean"], [10 ** 400]), r"config\.mean': must hold one finite number"),
    (_set(["config", "weight_bits"], 9), r"config\.weight_bits': is 9, outside .*2\.\.8"),
    (_set(["layers", -1, "scale"], 10 ** 400), r"head\)\.scale': is too large for a float"),
    (_set(["version"], 1.0), r"field 'version': is 1\.0"),
    (_set(["layers", 1, "out_channels"], 1 << 40), r"out_channels': is 1099511627776, outside "
                                                   r"1\.\.131072"),
    (_set(["layers", 1, "out_channels"], 16), r"sps\.conv2\)\.input': reads 'sps\.lif1' as "
                                              r"\[8, 8, 8\] but it is \[16, 8, 8\]"),
    (_set(["layers", 1, "arrays", "weight"], "layers/002/weight"), r"referenced twice"),
    (_set(["layers", 1, "arrays", "weight"], "header"), r"unreferenced entries "
                                                        r"'layers/001/weight'"),
    (_set(["stream", "theta"], ["x"]), r"stream\.theta': array \['x'\] missing"),
])
def test_huge_or_wrong_declared_values_are_refused(blob, edit, message):
    with pytest.raises(ir.IRError, match=message):
        ir.loads(_with_header(blob, edit))


def test_nan_in_header_json_is_refused(blob):
    entries = _entries(blob)
    text = np.load(io.BytesIO(entries["header"])).tobytes().replace(
        b'"float_accuracy":null', b'"float_accuracy":NaN')
    entries["header"] = _npy(np.frombuffer(text, np.uint8))
    with pytest.raises(ir.IRError, match="field 'header': is not valid JSON"):
        ir.loads(_zip(entries))


@pytest.mark.parametrize("over, figure", [
    (dict(T=256, img_size=[64, 64], embed_dims=64, pooling_stat="0011"), "GiB for one image"),
    (dict(img_size=[4096, 4096], pooling_stat="1111"), "GiB for one image"),
    (dict(embed_dims=2048, depths=8, mlp_ratio=8), "MiB, above the 256 MiB limit"),
])
def test_resource_limits_name_the_figure_and_the_limit(blob, over, figure):
    """The limits are checked from the header's layer records, before any array is read."""
    config = synthetic.tiny_config(**over)

    def edit(h):
        h["config"].update(config)
        extra = {"sdsa": dict(theta=1, shift=1, stateless_or=True), "head": dict(scale=0.01)}
        h["layers"] = [dict(kind=kind, name=name, input=inp, output=outp, widths={}, arrays={},
                            **kw, **extra.get(kind, {}))
                       for kind, name, inp, outp, kw in ir.expected_layout(config)]

    with pytest.raises(ir.IRError, match=f"field 'config': .*{figure}"):
        ir.loads(_with_header(blob, edit))


def _preset_config(preset):
    config = {k: list(v) if isinstance(v, tuple) else v
              for k, v in dataclasses.asdict(preset.config).items()}
    return {**config, "weight_bits": 8}


@pytest.mark.parametrize("name", INTEGER_PRESETS)
def test_every_preset_fits_the_limits(name):
    config = _preset_config(PRESETS[name])
    # Half the limit to spare; the 128×128 event preset (T = 16 frames) needs 1.06 GiB.
    spare = 1 if config.get("encoding") == "events" else 2
    assert ir.golden_memory_bytes(config) <= ir.MAX_GOLDEN_BYTES // spare
    assert ir.array_bytes(config) <= ir.MAX_ARRAY_BYTES // 4
    for key, (lo, hi) in ir.CONFIG_RANGES.items():
        values = config["img_size"] if key == "img_side" else [config[key]]
        assert all(lo <= v <= hi for v in values), key


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if n.startswith("imagenet") else n
    for n in INTEGER_PRESETS])
def test_synthetic_model_of_every_preset_validates(name):
    model = synthetic.random_model(_preset_config(PRESETS[name]), seed=1)
    data = ir.dumps(model)
    assert ir.dumps(ir.loads(data)) == data


@pytest.mark.parametrize("over", [
    dict(), dict(T=16), dict(img_size=[4, 4], embed_dims=8, T=2, num_classes=3),
    dict(img_size=[6, 5], embed_dims=16, T=3, pooling_stat="1111"),
    dict(img_size=[16, 16], embed_dims=32, pooling_stat="1010", T=8, mlp_ratio=8),
    dict(img_size=[32, 32], in_channels=3, mean=[0.5] * 3, std=[0.3] * 3, embed_dims=128,
         pooling_stat="0000", T=2),
    dict(img_size=[1, 1], embed_dims=8, T=1, num_classes=1000),
])
def test_golden_memory_estimate_bounds_the_measured_peak(over):
    from sdtforge.sim import golden
    config = synthetic.tiny_config(**over)
    model = synthetic.random_model(config, seed=1)
    images = np.full((1, config["in_channels"], *config["img_size"]), 100, np.uint8)
    _, peak = _peak(lambda: golden.run(model, images, spikes=True))
    estimate = ir.golden_memory_bytes(config) - ir.array_bytes(config) - images.size
    assert peak <= estimate <= 4 * peak + (1 << 20)


def _zeros_model(config):
    """A valid model of ``config`` with all-zero weights and biases: tiny compressed files."""
    layers = []
    for kind, name, inp, outp, kw in ir.expected_layout(config):
        cls = ir.LAYER_KINDS[kind]
        rec = dict(name=name, input=inp, output=outp, widths={}, **kw)
        for key, (dtype, dims) in cls.ARRAYS.items():
            shape = tuple(kw[d] if isinstance(d, str) else d for d in dims)
            rec[key] = (np.ones if key in ("theta", "scale") else np.zeros)(shape, dtype)
        if kind == "sdsa":
            rec.update(theta=1, shift=1, stateless_or=True)
        if kind == "head":
            rec["scale"] = 0.01
        layers.append(cls(**rec))
    d = config["embed_dims"]
    return ir.finalize(ir.IntegerModel(
        config=config, layers=layers, stream_theta=np.ones(d, np.int64),
        stream_scale=np.ones(d), provenance={"checkpoint_sha256": "0" * 64, "quantizer": {},
                                             "float_accuracy": None, "integer_accuracy": None}))


def test_small_file_of_a_large_model_costs_its_arrays_not_more():
    """The most a small file can make the loader allocate is the arrays its header declares
    (bounded by MAX_ARRAY_BYTES) plus ~2x the largest weight for the range checks."""
    config = synthetic.tiny_config(embed_dims=512, mlp_ratio=8, depths=2)
    data = ir.dumps(_zeros_model(config))
    arrays = ir.array_bytes(config)
    assert len(data) < arrays // 100 and arrays > 12 << 20
    result, peak = _peak(lambda: ir.loads(data))
    assert isinstance(result, ir.IntegerModel)
    assert peak < arrays + 2 * 4096 * 512 + (8 << 20)


# -- the layer sequence ---------------------------------------------------------------------
# A model is any sequence of registered kinds whose dataflow holds, not only the SDT v1 list.


def _without(model, *names):
    out = dataclasses.replace(model, layers=[lay for lay in model.layers if lay.name not in names])
    return ir.finalize(out)


def test_a_sequence_other_than_the_config_layout_loads_and_runs(model):
    """Without the rpe and the MLP the model is another valid sequence: it loads, the golden
    model runs it and the compiler compiles it."""
    from sdtforge.hdl.compile import compile_model
    from sdtforge.sim import golden

    names = [lay.name for lay in model.layers if lay.name == "sps.rpe" or ".mlp." in lay.name]
    assert len(names) == 4
    short = ir.loads(ir.dumps(_without(model, *names)))
    assert [lay.name for lay in short.layers] == [lay.name for lay in model.layers
                                                  if lay.name not in names]
    images = np.arange(2 * 64, dtype=np.uint8).reshape(2, 1, 8, 8)
    assert golden.run(short, images).logits.shape == (2, 10)
    compiled = compile_model(short, lanes=8, width=16)
    assert "sps.rpe" not in compiled.names and "block0.mlp.fc1" not in compiled.names


def _layers_edit(fn):
    def edit(h):
        fn(h["layers"])
    return edit


def _swap(i, j):
    def fn(layers):
        layers[i], layers[j] = layers[j], layers[i]
    return fn


@pytest.mark.parametrize("edit, message", [
    # conv1 reads a map nobody wrote
    (_layers_edit(lambda ls: ls[1].update(input="nowhere")),
     r"sps\.conv1\)\.input': reads 'nowhere' before a layer writes it"),
    # two layers write the same spike map
    (_layers_edit(lambda ls: ls[2].update(output="sps.lif1")),
     r"sps\.conv2\)\.output': writes 'sps\.lif1', which exists already"),
    # a LIF reads the stream before a stream writer ran
    (_layers_edit(_swap(3, 4)), r"sps\.lif3\)\.input': reads 'stream' before"),
    # the head is not last
    (_layers_edit(lambda ls: ls.append(dict(ls[-2], name="again"))),
     r"the last layer, and only it, writes the logits"),
    # a second layer reads the pixels
    (_layers_edit(lambda ls: ls[1].update(input="pixels")), r"only it, reads the pixels"),
    # a record that says it reads one tensor but its kind reads another
    (_layers_edit(lambda ls: ls[4].update(input="sps.lif2")),
     r"a stream_lif layer reads 'stream' and writes 'sps\.lif3', not 'sps\.lif2' -> "),
    # two layers with one name
    (_layers_edit(lambda ls: ls[2].update(name="sps.conv1")),
     r"is the name of an earlier layer"),
])
def test_a_sequence_whose_dataflow_does_not_hold_is_refused(blob, edit, message):
    with pytest.raises(ir.IRError, match=message):
        ir.loads(_with_header(blob, edit))
