"""PyTorch Spike-Driven Transformer v1 (float, trainable), datasets and training."""
