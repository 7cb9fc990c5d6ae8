"""Amaranth components of the accelerator and the IR → program compiler."""
