"""Latency per image from the cycle model: cycles at ``P`` lanes and ``W``-bit words, and time.

:func:`cycles_per_image` runs the golden model over the first test images of a model's dataset
and averages the cycle model's count (:func:`sdtforge.sim.cycles.predict`, equal to the RTL's
count); :func:`latency` turns cycles and a clock into milliseconds per image and images per
second. :func:`predictions` is the per-image loop on its own, for callers that already hold a
golden result (``sdtforge report``, the benchmarks). :func:`sdram_cycles_per_image` adds the
weight stream from SDRAM (:func:`sdtforge.sim.sdram.weight_stream`: the tile prefetch's stalls)
for a configuration built with it.
"""

import numpy as np

from . import cycles, golden

__all__ = ["DEFAULT_IMAGES", "dataset_of", "sample_images", "predictions", "mean_cycles",
           "cycles_per_image", "sdram_cycles_per_image", "latency"]

#: Test images the latency is averaged over (a digits-sized model's mean is stable by then).
DEFAULT_IMAGES = 10


def dataset_of(model):
    """The dataset a model was trained on (``"digits"`` when its provenance does not say)."""
    return model.provenance.get("dataset") or "digits"


def sample_images(model, images=DEFAULT_IMAGES, data_dir=None):
    """The first ``images`` test images of the model's dataset, ``uint8 [B, C, H, W]``.

    A synthetic model (``sdtforge synth``: random weights, no dataset) gets the seeded random
    inputs its firing rate was tuned on (:func:`sdtforge.quantize.synthetic.synthetic_images`).

    Raises
    ------
    UserError
        The dataset cannot be read, e.g. a ``cifar10`` model without ``data_dir``.
    """
    from sdtforge.model import load_integer_inputs

    synthetic = model.provenance.get("synthetic")
    if synthetic is not None:
        from sdtforge.quantize.synthetic import synthetic_images

        return synthetic_images(model.config, images, synthetic["seed"])

    x, _ = load_integer_inputs(dataset_of(model), "test", model.config, data_dir)
    return x[:images]


def predictions(model, result, lanes, width, config=None):
    """:func:`~sdtforge.sim.cycles.predict` for every image of a golden result.

    Parameters
    ----------
    model : IntegerModel
        The integer model.
    result : GoldenResult
        ``golden.run(model, images, spikes=True)``.
    lanes, width : int
        The accelerator's ``P`` and ``W``.
    config : AccelConfig, optional
        The built configuration (:func:`~sdtforge.sim.cycles.predict`); by default the one
        derived from the model, with one write-back cycle.

    Returns
    -------
    list of dict
        One ``{"total", "layers"}`` per image, in batch order.
    """
    return [cycles.predict(model, result.spikes, lanes, width, image=i, config=config)
            for i in range(result.batch)]


def mean_cycles(model, result, lanes, width, config=None):
    """Mean predicted cycles per image over a golden result's images (:func:`predictions`)."""
    return float(np.mean([p["total"] for p in predictions(model, result, lanes, width,
                                                          config)]))


def cycles_per_image(model, lanes, width, images=DEFAULT_IMAGES, data_dir=None,
                     config=None):
    """Mean cycle-model cycles per image over the first ``images`` test images.

    Parameters
    ----------
    model : IntegerModel
        The integer model.
    lanes, width : int
        The accelerator's ``P`` and ``W``.
    images : int
        How many test images (from the first) to average over.
    data_dir : str or Path, optional
        Dataset folder (needed for ``cifar10`` models).
    config : AccelConfig, optional
        As for :func:`predictions`.

    Returns
    -------
    float

    Raises
    ------
    UserError
        The model's dataset cannot be read (see :func:`sample_images`).
    """
    x = sample_images(model, images, data_dir)
    return mean_cycles(model, golden.run(model, x, spikes=True), lanes, width, config)


def sdram_cycles_per_image(model, config, clock_mhz, images=DEFAULT_IMAGES, data_dir=None):
    """As :func:`cycles_per_image`, with the weights streamed from SDRAM through the tile
    prefetch that ``config`` was built for (``config.weight_tile_rows``; its window
    ``config.weight_window``), the SDRAM clocked with the engine at ``clock_mhz``.

    Images follow each other (``warm``: the window holds the first tiles of an image when it
    starts, fetched during the image before).

    Returns
    -------
    dict
        Means over the images: ``cycles`` (compute and stalls), ``stall_cycles`` (the engine
        waiting for weights), ``weight_bytes`` (read from SDRAM per image).
    """
    from .sdram import weight_stream

    x = sample_images(model, images, data_dir)
    result = golden.run(model, x, spikes=True)
    runs = [weight_stream(model, result.spikes, config.lanes, config.width, clock_mhz, image=i,
                          config=config, window="rtl", warm=True)
            for i in range(result.batch)]
    return {key: float(np.mean([r[name] for r in runs])) for key, name in
            (("cycles", "total_cycles"), ("stall_cycles", "stall_cycles"),
             ("weight_bytes", "weight_bytes"))}


def latency(cycles_per_img, clock_mhz):
    """Milliseconds per image and images per second of ``cycles_per_img`` at ``clock_mhz``.

    Returns
    -------
    dict
        ``latency_ms`` (rounded to 4 decimals) and ``images_per_s`` (rounded to 1 decimal).
    """
    seconds = cycles_per_img / (clock_mhz * 1e6)
    return {"latency_ms": round(seconds * 1e3, 4), "images_per_s": round(1.0 / seconds, 1)}
