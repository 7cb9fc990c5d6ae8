"""CLI subcommands; see :mod:`sdtforge.cli` for the module contract."""
