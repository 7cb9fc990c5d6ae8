"""Shared pytest settings: a deterministic, deadline-free Hypothesis profile (noisy machine),
the long tests scheduled first."""

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


def pytest_collection_modifyitems(config, items):
    """The long system tests first (CI runs them with the rest on two workers): a worker that
    finishes the short tests takes the remaining long ones, instead of the run ending on one
    long test started last."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
