"""experiments/pope_probe.py (text probe): its report on hand-checked scores, the scene as text.

    python -m pytest experiments/test_pope_probe.py      # not part of `make test`: the probe is an experiment
"""

import importlib.util
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location("pope_probe", Path(__file__).parent / "pope_probe.py")
probe = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(probe)


def test_report_counts_positive_scores_as_yes():
    line = probe.report("x", [1.0, -1.0, 2.0, 0.5], [True, False, False, True])
    assert line == "x: n=4 AUC 0.500, accuracy 75.0%"


def test_scene_text_lists_every_object():
    scene = {"background": "grass", "objects": [{"size": "small", "color": "red", "category": "ball"},
                                                {"size": "large", "color": "green", "category": "tree"}]}
    assert probe.scene_text(scene) == "The image shows a small red ball, a large green tree on a grass background."
