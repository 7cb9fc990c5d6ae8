"""Small event-camera models for the integer-flow and co-simulation tests."""

import numpy as np
from _reference import reference_state_dict

from sdtforge.model import SDTConfig, SpikeDrivenTransformer

CONFIG = SDTConfig(in_channels=2, img_size=(12, 12), embed_dims=16, depths=1, T=3,
                   pooling_stat="0011", num_classes=4, mean=(0.0, 0.0), std=(1.0, 1.0),
                   num_heads=2, encoding="events")


def float_event_model(config=CONFIG, seed=3):
    """A float event model with weights of the reference's shapes (spiking in every layer)."""
    model = SpikeDrivenTransformer(config)
    model.load_state_dict(reference_state_dict(config, seed=seed, gain=4))
    return model.eval()


def event_frames(config=CONFIG, batch=4, seed=0, rate=0.8):
    """Poisson event counts ``uint8 [B, T, C, H, W]``, different at every step."""
    rng = np.random.default_rng(seed)
    return rng.poisson(rate, (batch, config.T, config.in_channels, *config.img_size)
                       ).astype(np.uint8)


#: A DVS-mode event model (the reference's ``dvs_mode``: erosions inside the attention).
DVS_CONFIG = SDTConfig(in_channels=2, img_size=(12, 12), embed_dims=16, depths=1, T=3,
                       pooling_stat="0011", num_classes=4, mean=(0.0, 0.0), std=(1.0, 1.0),
                       num_heads=2, encoding="events", dvs=True)


def qat_spikes_equal_golden(model, q, x):
    """Every spike of QAT's integer-equivalent forward of ``model`` on frames ``x`` equals the
    golden model's of ``q`` (its quantized model); returns the golden spikes."""
    import torch

    from sdtforge.quantize.qat import integer_forward
    from sdtforge.sim import golden

    with torch.no_grad():
        _, spikes = integer_forward(model, torch.as_tensor(x), 8, return_spikes=True)
    res = golden.run(q, x, spikes=True)
    for name, s in spikes.items():
        assert np.array_equal(s.numpy().astype(np.uint8), res.spikes[name]), name
    return res.spikes
