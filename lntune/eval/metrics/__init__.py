"""The benchmarks' official scorers, re-stated: scores equal the official tools' on the same predictions.

One module per benchmark: vqav2.py (vqaEval.py), pope.py (POPE evaluate.py), mme.py (calculation.py),
caption.py (pycocoevalcap). Each reads the official file formats; all scores are percentages.
From the command line: `lntune score {vqav2,pope,mme,caption} ... [--json]`.
"""

from lntune.eval.metrics.caption import approximate_tokenize, score_captions
from lntune.eval.metrics.mme import mme_result_line, parse_mme_answer, score_mme
from lntune.eval.metrics.pope import parse_pope_answer, score_pope
from lntune.eval.metrics.vqav2 import normalize_vqa_answer, score_vqav2, vqa_accuracy

__all__ = [
    "approximate_tokenize", "mme_result_line", "normalize_vqa_answer", "parse_mme_answer", "parse_pope_answer",
    "score_captions", "score_mme", "score_pope", "score_vqav2", "vqa_accuracy",
]
