"""lntune: turn a text LLM into a multi-modal LLM by tuning only its normalization layers.

Library entry points live in the sub-packages (model, strategies, data, train, eval, analysis); the
command line is `lntune --help` (see lntune/cli.py).
"""

__version__ = "0.1.0"
