"""lntune.eval.scores: one reader of an evaluation's {task: metrics}, shared by reports, verdicts and sweeps."""

import pytest

from lntune.errors import LntuneError
from lntune.eval.scores import Scores
from lntune.sweep import selection_metric

METRICS = {
    "mme": {"perception": 310.0, "cognition": 0.0, "subtasks": {"existence": {}, "color": {}},
            "ci95": {"perception": [290.0, 330.0]}},
    "vqav2": {"accuracy": 41.5},
    "flickr30k": {"CIDEr": 12.25, "ci95": {"CIDEr": [10.0, 14.5]}},
    "pope": {"random": {"accuracy": 80.0}, "adversarial": {"accuracy": 70.0}, "mean_accuracy": 75.0, "mean_f1": 74.0,
             "ci95": {"random": {"accuracy": [75.0, 85.0]}}},
}


def test_scores_read_every_number_once():
    s = Scores.of(METRICS)
    assert (s.mme_perception, s.mme_cognition, s.vqav2, s.coco, s.flickr30k) == (310.0, 0.0, 41.5, None, 12.25)
    assert s.pope_splits == {"random": 80.0, "adversarial": 70.0}
    assert s.mme_sides == ("perception",)
    # a cognition total of 0 (no cognition subtask scored) is not a headline number
    assert s.headline() == {"mme_perception": 310.0, "vqav2": 41.5, "flickr30k": 12.25, "pope_accuracy": 75.0,
                            "pope_f1": 74.0}
    assert s.headline_intervals() == {"mme_perception": [290.0, 330.0], "flickr30k": [10.0, 14.5]}
    assert s.interval("pope_random") == [75.0, 85.0]
    assert s.table1_row()["pope_popular"] is None and s.table1_row()["mme_cognition"] is None


def test_selection_numbers():
    assert selection_metric("flickr30k", METRICS["flickr30k"]) == 12.25
    assert selection_metric("pope", METRICS["pope"]) == 74.0
    assert selection_metric("mme", {"perception": 300.0, "cognition": 50.0}) == 350.0
    assert selection_metric("mme", {"perception": 300.0}) == 300.0
    with pytest.raises(LntuneError, match="unknown selection task 'gqa'"):
        selection_metric("gqa", {})
