"""The benchmarks' official scorers, re-stated: scores equal the official tools' on the same predictions.

One module per benchmark: vqav2.py (vqaEval.py), pope.py (POPE evaluate.py), mme.py (calculation.py),
caption.py (pycocoevalcap). Each reads the official file formats; all scores are percentages.
Each scorer is per-unit records (`*_units`: per question, MME image or caption image) plus their official
summary; `bootstrap=N` adds 95% intervals ("ci95", lntune/eval/intervals.py).
From the command line: `lntune score {vqav2,pope,mme,caption} ... [--json]`.
"""

from lntune.eval.metrics.caption import approximate_tokenize, caption_units, score_captions
from lntune.eval.metrics.mme import mme_result_line, mme_units, parse_mme_answer, score_mme
from lntune.eval.metrics.pope import parse_pope_answer, pope_units, score_pope
from lntune.eval.metrics.vqav2 import normalize_vqa_answer, score_vqav2, vqa_accuracy, vqav2_units

__all__ = [
    "approximate_tokenize", "caption_units", "mme_result_line", "mme_units", "normalize_vqa_answer",
    "parse_mme_answer", "parse_pope_answer", "pope_units", "score_captions", "score_mme", "score_pope",
    "score_vqav2", "vqa_accuracy", "vqav2_units",
]
