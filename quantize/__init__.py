"""BN folding, integer quantization and the IR file.

Importing this package does not import torch: :mod:`sdtforge.quantize.ir` needs NumPy only;
the quantizer itself (which needs torch) is imported on use.
"""
