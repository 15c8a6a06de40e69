"""lntune: turn a text LLM into a multi-modal LLM by tuning only its normalization layers.

Library entry points live in the sub-packages (model, strategies, data, train, eval, analysis); the
command line is `lntune --help` (see lntune/cli.py).
"""

__version__ = "0.1.0"


def _quiet_deepspeed_cpu_notice() -> None:
    """accelerate imports DeepSpeed (installed for ZeRO training) in every command, and DeepSpeed then says
    "Setting accelerator to CPU..." on stdout when it finds no GPU: into the output of `lntune chat` and the rest.
    Drop that one line; DeepSpeed's other messages pass."""
    import logging

    logging.getLogger("DeepSpeed").addFilter(lambda record: "Setting accelerator to CPU" not in record.getMessage())


_quiet_deepspeed_cpu_notice()
