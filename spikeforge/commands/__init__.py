"""CLI subcommands; see :mod:`spikeforge.cli` for the module contract."""
