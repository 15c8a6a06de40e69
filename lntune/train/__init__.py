"""Training: one Trainer on accelerate (loop.py: setup, step, save, run), atomic checkpoints with exact resume
(checkpoint.py), the optimizer and learning-rate schedule (optim.py)."""
