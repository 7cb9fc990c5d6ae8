"""Board tops, platforms and bitstream builds."""
