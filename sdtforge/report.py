"""``sdtforge report``: one Markdown page and its plots for a model and the runs made on it.

The report gathers what the flow measured — float and integer accuracy, per-layer firing rates,
the cycle model's cycles per layer, the energy estimate, and, when their JSON results are
given, the RTL co-simulation and the board builds — into ``report.md``, ``report.json`` and PNG
plots. Nothing in it is estimated that the flow did not compute; a stage that was not run is
reported as such.
"""

import json
from pathlib import Path

import numpy as np

from sdtforge.errors import UserError

__all__ = ["collect", "write_report"]

# Few images give stable firing rates and cycle estimates for a digits-sized model.
DEFAULT_IMAGES = 100


def _read_json(path, what):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{what} file {path} does not exist; run the command that writes it "
                        "first or leave the option out") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{what} file {path} is not readable JSON ({exc})") from None


def collect(model_path, *, cosim=None, builds=(), asic=None, images=DEFAULT_IMAGES, lanes=8,
            width=16, data_dir=None):
    """Compute the report's figures; returns a JSON-serializable dict."""
    from sdtforge.model import load_integer_inputs
    from sdtforge.quantize import ir
    from sdtforge.sim import cycles, energy, golden, latency

    model = ir.load(model_path)
    dataset = latency.dataset_of(model)
    synthetic = model.provenance.get("synthetic") is not None
    if synthetic:
        # A `sdtforge synth` model: random weights, its own random inputs, no accuracy.
        test_x, int_accuracy = latency.sample_images(model, images), None
    else:
        test_x, test_y = load_integer_inputs(dataset, "test", model.config, data_dir)
        acc = golden.run(model, test_x)
        int_accuracy = float((acc.classes == test_y).mean())

    sample = test_x[:images]
    res = golden.run(model, sample, spikes=True)
    rates = {name: float(np.asarray(s).mean()) for name, s in res.spikes.items()
             if name != "pixels"}  # an event model's input counts are recorded too
    per_image = res.per_image()
    preds = latency.predictions(model, res, lanes, width)
    totals = [p["total"] for p in preds]
    per_layer_cycles = {}
    for pred in preds:
        for name, c in pred["layers"].items():
            per_layer_cycles[name] = per_layer_cycles.get(name, 0) + c / len(sample)
    counts = res.totals()
    report = {
        "model": Path(model_path).name,
        "dataset": dataset,
        "synthetic": synthetic,
        "test_images": 0 if synthetic else int(len(test_x)),
        "sample_images": int(len(sample)),
        "hardware": {"lanes": lanes, "width": width},
        "accuracy": {
            "float": model.provenance.get("float_accuracy"),
            "integer": int_accuracy,
            "rtl": None,
        },
        "firing_rates": rates,
        "cycles": {
            "mean_per_image": float(np.mean(totals)),
            "per_layer": per_layer_cycles,
            "work_bound": float(cycles.work_bound(counts, lanes)),
            "dense_bound": float(cycles.dense_bound(model, lanes)),
        },
        "counts_per_image": counts,
        "energy": energy.energy(per_image),
        "energy_with_memory": energy.memory_energy(model, per_image),
        "sdsa": energy.sdsa_ratio_from_counts(model, per_image),
        "cosim": None,
        "boards": [],
        "asic": None,
    }
    if cosim is not None:
        c = _read_json(cosim, "co-simulation result")
        report["cosim"] = c
        if c.get("rtl_accuracy") is not None:
            report["accuracy"]["rtl"] = c["rtl_accuracy"]
    for b in builds:
        report["boards"].append(_read_json(b, "build result"))
    if asic is not None:
        report["asic"] = _read_json(asic, "ASIC estimate")
    return report


def _plots(report, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta = {"Software": None}  # keep the PNGs free of version strings
    files = {}

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(out / name, dpi=100, metadata=meta)
        plt.close(fig)
        files[name.removesuffix(".png")] = name

    rates = report["firing_rates"]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.bar(range(len(rates)), list(rates.values()), color="tab:blue")
    ax.set_xticks(range(len(rates)), list(rates), rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("firing rate")
    ax.set_title("Firing rate per layer (golden model)")
    save(fig, "firing_rates.png")

    cyc = report["cycles"]["per_layer"]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.bar(range(len(cyc)), list(cyc.values()), color="tab:orange")
    ax.set_xticks(range(len(cyc)), list(cyc), rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("cycles per image")
    ax.set_title(f"Cycles per layer (P={report['hardware']['lanes']}, "
                 f"W={report['hardware']['width']}, cycle model)")
    save(fig, "cycles.png")

    accs = {k: v for k, v in report["accuracy"].items() if v is not None}
    if "rtl" in accs:
        accs[f"rtl ({report['cosim']['images']} images)"] = accs.pop("rtl")
    if accs:                        # none for a synthetic model
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.bar(list(accs), [100 * v for v in accs.values()], color="tab:green")
        ax.set_ylim(min(100 * v for v in accs.values()) - 5, 100)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title("Accuracy")
        save(fig, "accuracy.png")

    energy = report["energy"]["per_layer_pj"]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.bar(range(len(energy)), [v / 1e3 for v in energy.values()], color="tab:red")
    ax.set_xticks(range(len(energy)), list(energy), rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("nJ per image")
    ax.set_title(f"Energy per layer (45 nm estimate, total "
                 f"{report['energy']['total_uj']:.3f} µJ)")
    save(fig, "energy.png")

    if report["boards"]:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        kinds = ["lut", "ff", "bram", "dsp"]
        boards = report["boards"]
        xs = np.arange(len(kinds))
        for i, b in enumerate(boards):
            util = [_utilization(b, k) for k in kinds]
            ax.bar(xs + i * 0.8 / len(boards), util, width=0.8 / len(boards), label=b["board"])
        ax.set_xticks(xs + 0.4 - 0.4 / len(boards), [k.upper() for k in kinds])
        ax.set_ylabel("utilization (%)")
        ax.set_title("Resources per board")
        ax.legend()
        save(fig, "resources.png")
    return files


# `sdtforge build` names logic after the family: iCE40 logic cells, ECP5 LUT4s.
_LOGIC_KEYS = ("lc", "lut4")


def _resource(build, kind):
    """``(used, available)`` of ``kind`` (``lut``, ``ff``, ``bram``, ``spram``, ``dsp``)."""
    keys = _LOGIC_KEYS if kind == "lut" else (kind,)
    for key in keys:
        if key in build:
            return build[key], build.get(f"{key}_available")
    return None, None


def _utilization(build, kind):
    used, avail = _resource(build, kind)
    return 100.0 * used / avail if used is not None and avail else 0.0


def _figure(build, key, fmt):
    """``build[key]`` formatted, or a dash where the build did not report it."""
    value = build.get(key)
    return "–" if value is None else format(value, fmt)


def _clock(build):
    """The built clock in MHz (``clock_mhz``; builds before it was named: ``f_sync_mhz``)."""
    value = build.get("clock_mhz", build.get("f_sync_mhz"))
    return "–" if value is None else f"{value:g}"


def _markdown(report, files):
    a = report["accuracy"]
    lines = [f"# sdtforge report: {report['model']}", ""]
    if report.get("synthetic"):
        lines += [f"A synthetic `{report['dataset']}`-shaped model (`sdtforge synth`: random "
                  f"weights, a sizing aid): firing rates, cycles and energy over "
                  f"{report['sample_images']} random inputs; it has no accuracy.", ""]
        if report["cosim"]:
            lines += [_cosim_line(report["cosim"]), ""]
        return _markdown_figures(report, files, lines)
    lines += [f"Dataset `{report['dataset']}`, {report['test_images']} test images; firing rates,"
              f" cycles and energy over the first {report['sample_images']} of them.", ""]
    lines += ["## Accuracy", "", "| model | test accuracy |", "|---|---|"]
    for k in ("float", "integer", "rtl"):
        v = a[k]
        label = {"float": "float (PyTorch)", "integer": "integer (golden model)",
                 "rtl": "RTL (co-simulation)"}[k]
        value = f"{100 * v:.2f} %" if v is not None else "not run"
        if k == "rtl" and v is not None:
            value += f" (first {report['cosim']['images']} test images only)"
        lines.append(f"| {label} | {value} |")
    c = report["cosim"]
    if c:
        lines += ["", _cosim_line(c) + " RTL accuracy over those images."]
    lines += ["", f"![accuracy]({files['accuracy']})", ""]
    return _markdown_figures(report, files, lines)


def _cosim_line(c):
    return (f"Co-simulation ({c.get('sim')}, generated Verilog): bit-exact "
            f"{c.get('bit_exact')}/{c.get('images')} images.")


def _markdown_figures(report, files, lines):
    """The report's sections after the accuracy: firing rates, cycles, energy, resources."""
    lines += ["## Firing rates", "", "| layer | rate |", "|---|---|"]
    lines += [f"| {n} | {r:.4f} |" for n, r in report["firing_rates"].items()]
    lines += ["", f"![firing rates]({files['firing_rates']})", ""]
    cy = report["cycles"]
    hw = report["hardware"]
    lines += ["## Cycles", "",
              f"P = {hw['lanes']} lanes, W = {hw['width']}-bit spike words. Mean "
              f"{cy['mean_per_image']:.0f} cycles per image (cycle model, equal to the RTL's "
              f"count); work bound {cy['work_bound']:.0f} "
              f"({cy['mean_per_image'] / cy['work_bound']:.2f}×), dense bound "
              f"{cy['dense_bound']:.0f} "
              f"(speed-up {cy['dense_bound'] / cy['mean_per_image']:.2f}×).",
              ""]
    # Per-layer latency on each board built at these lanes and this word width.
    clocks = [(b["board"], b.get("clock_mhz", b.get("f_sync_mhz"))) for b in report["boards"]
              if b.get("lanes") == hw["lanes"] and b.get("width", hw["width"]) == hw["width"]]
    clocks = [(board, mhz) for board, mhz in clocks if mhz]
    lines += ["| layer | cycles |" + "".join(f" µs on {bd} ({mhz:g} MHz) |" for bd, mhz in clocks),
              "|---|---|" + "---|" * len(clocks)]
    lines += [f"| {n} | {v:.0f} |" + "".join(f" {v / mhz:.1f} |" for _, mhz in clocks)
              for n, v in cy["per_layer"].items()]
    lines += ["", f"![cycles]({files['cycles']})", ""]
    e = report["energy"]
    n = report["counts_per_image"]
    lines += ["## Energy per inference", "",
              f"{n['acs']:.0f} synaptic accumulates and {n['macs']:.0f} first-layer MACs per "
              f"image: **{e['total_uj']:.3f} µJ** (AC {e['ac_uj']:.3f} µJ at 0.9 pJ, MAC "
              f"{e['mac_uj']:.3f} µJ at 4.6 pJ; 45 nm figures of the SDT paper, which charges "
              "compute only).", ""]
    m = report["energy_with_memory"]
    lines += [f"With memory (every weight, membrane, spike, stream and input access the golden "
              f"model counts, at Horowitz's 45 nm SRAM energy for each memory's size, ISSCC "
              f"2014): **{m['total_uj']:.3f} µJ** per image, of which memory "
              f"{m['memory_uj']:.3f} µJ.", "",
              "| part | µJ per image | memory size (bytes) |", "|---|---|---|",
              f"| compute (paper's method) | {m['compute_uj']:.4f} | – |"]
    lines += [f"| {k} memory | {v:.4f} | {m['sizes_bytes'].get(k, 0):.0f} |"
              for k, v in m["by_memory_uj"].items() if k != "dram" or v]
    lines.append("")
    for name, s in report["sdsa"].items():
        lines.append(f"- `{name}`: K∧V rate {s['kv_rate']:.4f}; against vanilla "
                     f"self-attention of the same shape SDSA uses {s['ratio']:.1f}× less energy "
                     f"for the operator between Q, K and V, {s['module_ratio']:.2f}× less for "
                     "the module with the Q/K/V generation.")
    lines += ["", f"![energy]({files['energy']})", ""]
    lines += ["## Boards", ""]
    if report["boards"]:
        lines += ["| board | lanes | LUT/LC | FF | BRAM | SPRAM | DSP | Fmax (MHz) | "
                  "clock (MHz) | latency (ms) | images/s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for b in report["boards"]:
            cells = []
            for kind in ("lut", "ff", "bram", "spram", "dsp"):
                used, avail = _resource(b, kind)
                cells.append("–" if used is None else f"{used}" + (f" / {avail}" if avail else ""))
            lines.append(f"| {b['board']} | {b.get('lanes', '–')} | {' | '.join(cells)} | "
                         f"{_figure(b, 'fmax_mhz', '.1f')} | {_clock(b)} | "
                         f"{_figure(b, 'latency_ms', '.3f')} | "
                         f"{_figure(b, 'images_per_s', '.1f')} |")
        lines += ["", f"![resources]({files['resources']})"]
    else:
        lines.append("No board build was given (`--build DIR/report.json`).")
    asic = report["asic"]
    if asic:
        lines += ["", "## ASIC estimate", "",
                  f"Generic-gate synthesis of the core (P = {asic.get('lanes')}): "
                  f"**{asic.get('nand2')} NAND2 equivalents** ({asic.get('flops')} flip-flops) "
                  f"and {asic.get('sram_bits')} SRAM bits in {len(asic.get('macros', []))} macros."]
    return "\n".join(lines) + "\n"


def write_report(report, out):
    """Write ``report.md``, ``report.json`` and the PNG plots into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = _plots(report, out)
    (out / "report.md").write_text(_markdown(report, files))
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return out / "report.md"
