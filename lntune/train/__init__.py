"""Training: one explicit loop on accelerate (loop.py), atomic checkpoints with exact resume (checkpoint.py)."""
