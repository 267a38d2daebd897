"""The training engine: one loop in named steps, checkpoints, the CUDA-graph fast path."""
