"""Training: strategy selection, the loop, checkpoints, run directories."""
