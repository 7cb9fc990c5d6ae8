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
    """The long system tests first on every worker (CI runs them with the rest on two).

    pytest-xdist's ``worksteal`` gives each worker a contiguous share of the collection, in
    order, and a worker that runs out takes the tail of another's. With the long tests only at
    the front they all fell to the first worker, one after another, which set the run's length;
    so each worker's share starts with its part of them (``slow[k::n]``)."""
    workers = getattr(config, "workerinput", {}).get("workercount", 1)
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    fast = [item for item in items if item.get_closest_marker("slow") is None]
    order, left = [], len(items)
    for k in range(workers):
        share = left // (workers - k)           # as the scheduler splits what is left
        mine = slow[k::workers]
        take = max(share - len(mine), 0)
        order += mine + fast[:take]
        fast = fast[take:]
        left -= len(mine) + take
    items[:] = order + fast
