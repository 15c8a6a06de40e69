"""`lntune reproduce`: the paper's experiments in miniature on the embedded default, with a report whose
verdicts are decided by written rules against the paper's numbers (stored as data in lntune/paper/*.yaml).

    lntune reproduce --preset world-quick --out runs/reproduce
    from lntune.reproduce import reproduce

Files: experiments.py (the plan; its presets are lntune/configs/presets/reproduce.yaml), runner.py (runs it,
resumable, one progress bar), paper_values.py (reads the paper's tables), verdicts.py (one rule per claim,
decided on 95% intervals), resampled.py (the two-level bootstrap over seeds and questions behind them),
evidence.py (rules' inputs from our results and from the paper), report.py (markdown and figures).
"""

from lntune.reproduce.runner import reproduce

__all__ = ["reproduce"]
