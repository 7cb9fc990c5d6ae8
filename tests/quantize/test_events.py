"""Event-camera models (``encoding="events"``) through the integer flow: the quantizer's
``conv3x3_events`` first layer, the file format, the golden model and the cycle model."""

import numpy as np
import pytest
import torch
from _events import event_frames, float_event_model, qat_spikes_equal_golden

from sdtforge.errors import UserError
from sdtforge.model import integer_inputs
from sdtforge.quantize import ir
from sdtforge.quantize.quantizer import quantize_model
from sdtforge.quantize.synthetic import random_model, tiny_config
from sdtforge.sim import golden


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    path = tmp_path_factory.mktemp("events") / "events.sfm"
    model = float_event_model()
    ir.save(quantize_model(model), path)
    return model, ir.load(path)


def test_an_event_model_quantizes_to_an_event_first_layer_and_round_trips(quantized):
    _, q = quantized
    assert q.layers[0].KIND == "conv3x3_events" and q.encoding == "events"
    assert q.input_shape == (3, 2, 12, 12)
    assert q.config["encoding"] == "events"
    assert not q.zero_points.any()  # counts are padded with 0


def test_the_integer_model_follows_the_float_model(quantized):
    """Quantized without normalization folding (the float model takes counts as they are):
    the first layer's spikes agree almost everywhere, and so do the classes."""
    model, q = quantized
    x = event_frames(batch=16)
    with torch.no_grad():
        logits, spikes = model(torch.as_tensor(x), return_spikes=True)
    res = golden.run(q, x, spikes=True)
    first = (res.spikes["sps.lif0"] == spikes["sps.lif0"].numpy()).mean()
    assert first > 0.99, first
    assert 0.02 < res.spikes["sps.lif0"].mean() < 0.98  # it fires, and not everywhere
    assert (res.classes == logits.argmax(1).numpy()).mean() >= 0.75
    # Each layer alone, on the float network's inputs (the quantize report's table).
    from sdtforge.quantize.report import isolated_agreement

    iso = isolated_agreement(model, q, x)
    assert min(iso.values()) > 0.98 and iso["sps.lif0"] > 0.99, iso


def test_every_step_reads_its_own_frame(quantized):
    """The golden model's first layer convolves each step's frame: repeating frame 0 at every
    step gives other spikes from step 1 on (so a datapath that reused frame 0 would differ)."""
    _, q = quantized
    x = event_frames(batch=2)
    same = np.repeat(x[:, :1], x.shape[1], axis=1)
    a = golden.run(q, x, spikes=True).spikes["sps.lif0"]
    b = golden.run(q, same, spikes=True).spikes["sps.lif0"]
    assert np.array_equal(a[0], b[0])
    assert not np.array_equal(a[1:], b[1:])


def test_inputs_of_the_wrong_shape_or_type_are_refused(quantized):
    _, q = quantized
    x = event_frames(batch=1)
    with pytest.raises(UserError, match=r"event frames must be uint8 \[B, 3, 2, 12, 12\]"):
        golden.run(q, x[:, 0])
    with pytest.raises(UserError, match="must be uint8 counts"):
        golden.run(q, x.astype(np.int16))


def test_integer_inputs_round_and_saturate_counts():
    x = np.array([0, 3, 254.6, 255, 300, -2], np.float32)
    assert integer_inputs(x).tolist() == [0, 3, 255, 255, 255, 0]
    assert integer_inputs(x.astype(np.int16)).dtype == np.uint8
    pixels = np.arange(4, dtype=np.uint8)
    assert integer_inputs(pixels) is pixels


@pytest.mark.parametrize("first, encoding", [("conv3x3_pixel", "events"),
                                             ("conv3x3_events", "direct")])
def test_the_loader_refuses_a_first_layer_of_the_other_encoding(tmp_path, first, encoding):
    config = tiny_config(in_channels=2, mean=[0, 0], std=[1, 1], encoding=encoding)
    other = dict(config, encoding="direct" if encoding == "events" else "events")
    model = random_model(other, seed=0)
    model.config = config
    with pytest.raises(ir.IRError, match=f"a {first} layer cannot read {encoding} input"):
        ir.save(model, tmp_path / "m.sfm")  # saving validates as loading does
    assert not (tmp_path / "m.sfm").exists()


def test_the_loader_refuses_an_unknown_encoding(tmp_path):
    model = random_model(tiny_config(), seed=0)
    model.config = dict(model.config, encoding="spikes")
    with pytest.raises(ir.IRError, match="config.encoding.*must be one of direct, events"):
        ir.save(model, tmp_path / "m.sfm")


@pytest.mark.parametrize("largest, planes", [(0, 1), (1, 1), (5, 3), (128, 8), (255, 8)])
def test_the_first_layer_costs_a_gather_per_step(largest, planes):
    """The cycle model's pixel layer over event frames: bit-plane gathers at every step, where
    an image's run once — from the sample's top plane down (the highest bit of its largest
    count) where an image's run all eight."""
    from sdtforge.hdl.compile import compile_model
    from sdtforge.sim import cycles

    direct = tiny_config(in_channels=2, mean=[0, 0], std=[1, 1], T=3)
    events = dict(direct, encoding="events")
    out = {}
    for name, config in (("direct", direct), ("events", events)):
        model = random_model(config, seed=0)
        x = (np.zeros((1, 3, 2, 8, 8), np.uint8) if name == "events"
             else np.zeros((1, 2, 8, 8), np.uint8))
        x.reshape(-1)[37] = largest
        ref = golden.run(model, x, spikes=True)
        cfg = compile_model(model, lanes=8, width=16).config
        out[name] = cycles.predict(model, ref.spikes, 8, 16, config=cfg)["layers"]["sps.conv0"]

    def gather(p):
        # The first plane's start and fetch latency, 4 cycles per later plane (its start
        # overlaps the plane before's drain), a word per tap and channel in each, then the
        # last plane's drain and the take of its sums (sim.cycles, docs/accelerator.md §9).
        return 4 + (p - 1) * 4 + p * 9 * 2 + 3

    # One output group (4 channels on 8 lanes), 64 positions; three steps against one.
    assert out["events"] - out["direct"] == 1 * 64 * (3 * gather(planes) - gather(8))


def test_the_cli_quantizes_and_evaluates_an_event_checkpoint_on_dvs_gesture_files(tmp_path,
                                                                                   capsys):
    """``sdtforge quantize`` and ``sdtforge eval`` on a DVS128 Gesture-shaped checkpoint, with
    event files in spikingjelly's layout: framed to the model's T, saturated to bytes."""
    from sdtforge.cli import main
    from sdtforge.model import SDTConfig, save_checkpoint

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label in (0, 4):
            folder = tmp_path / "events_np" / split / str(label)
            folder.mkdir(parents=True)
            n = 4000
            np.savez(folder / f"user00_{label}.npz", x=rng.integers(0, 128, n),
                     y=rng.integers(0, 128, n), t=np.sort(rng.integers(0, 10**6, n)),
                     p=rng.integers(0, 2, n))
    config = SDTConfig(in_channels=2, img_size=(128, 128), embed_dims=16, depths=1, T=2,
                       pooling_stat="1111", num_classes=11, mean=(0.0, 0.0), std=(1.0, 1.0),
                       num_heads=2, encoding="events")
    ckpt = save_checkpoint(tmp_path / "g.pt", float_event_model(config), preset=None,
                           dataset="dvs-gesture", seed=0, train_settings={}, metrics={})
    sfm = tmp_path / "g.sfm"
    assert main(["quantize", str(ckpt), "--out", str(sfm), "--data-dir", str(tmp_path),
                 "--qat-epochs", "1"]) == 0
    assert "test images      2" in capsys.readouterr().out
    assert ir.load(sfm).layers[0].KIND == "conv3x3_events"
    assert main(["eval", str(sfm), "--data-dir", str(tmp_path), "--json"]) == 0
    import json

    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 2 and result["dataset"] == "dvs-gesture"
    assert result["counts_per_image"]["acs"] > 0 and result["counts_per_image"]["macs"] == 0


def test_hardware_built_for_images_refuses_an_event_model_and_builds_no_frame_logic():
    from sdtforge.hdl.compile import compile_model

    direct = tiny_config(in_channels=2, mean=[0, 0], std=[1, 1])
    events = random_model(dict(direct, encoding="events"), seed=0)
    images = compile_model(random_model(direct, seed=0), lanes=8, width=16).config
    assert images.event_frames == 0
    assert compile_model(events, lanes=8, width=16).config.event_frames == 1
    with pytest.raises(UserError, match="takes event frames but the hardware was built for "
                                        "images"):
        compile_model(events, images)
    from sdtforge.sim.cosim import generate_verilog

    assert "recv_frame" not in generate_verilog(images)
    assert "recv_frame" in generate_verilog(compile_model(events, lanes=8, width=16).config)


def test_the_qat_forward_of_an_event_model_equals_the_golden_model(quantized):
    """QAT's integer-equivalent forward folds no normalization into an event model's first
    conv, as the quantizer does: every spike equals the golden model's."""
    model, q = quantized
    assert qat_spikes_equal_golden(model, q, event_frames(batch=4, seed=2))["sps.lif0"].any()
