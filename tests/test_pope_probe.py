"""scripts/pope_probe.py: its ROC AUC and report on hand-checked scores."""

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location("pope_probe", Path(__file__).parents[1] / "scripts" / "pope_probe.py")
probe = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(probe)


@pytest.mark.parametrize("scores, labels, auc", [
    ([0.9, 0.1, 0.5, 0.4], [True, False, True, False], 1.0),   # every positive above every negative
    ([0.1, 0.9, 0.4, 0.5], [True, False, True, False], 0.0),
    ([0.5, 0.5, 0.5, 0.5], [True, False, True, False], 0.5),   # ties count half
    ([0.9, 0.3, 0.5, 0.7], [True, False, True, False], 0.75),  # 0.5 < 0.7: one of four pairs wrong
])
def test_roc_auc(scores, labels, auc):
    assert probe.roc_auc(scores, labels) == auc


def test_report_counts_positive_scores_as_yes():
    line = probe.report("x", [1.0, -1.0, 2.0, 0.5], [True, False, False, True])
    assert line == "x: n=4 AUC 0.500, accuracy 75.0%"
