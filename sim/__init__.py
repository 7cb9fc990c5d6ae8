"""Golden integer model (pure NumPy), cycle and energy models, co-simulation harness."""
