"""Training: the loop, its checkpoints and resume, losses."""
