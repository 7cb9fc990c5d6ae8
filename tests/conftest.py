"""Shared pytest settings: a deterministic, deadline-free Hypothesis profile (noisy machine)."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "sdtforge",
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    max_examples=int(os.environ.get("SDTFORGE_EXAMPLES", "50")),
)
settings.load_profile("sdtforge")
