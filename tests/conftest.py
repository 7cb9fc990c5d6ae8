"""Shared pytest settings: a deterministic, deadline-free Hypothesis profile (noisy machine)."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "spikeforge",
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    max_examples=int(os.environ.get("SPIKEFORGE_EXAMPLES", "50")),
)
settings.load_profile("spikeforge")
