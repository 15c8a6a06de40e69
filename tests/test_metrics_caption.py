"""Caption scorer: pycocoevalcap numbers on the real samples, the no-Java fallback, input errors."""

import json
import shutil
from pathlib import Path

import pytest

from lntune.errors import LntuneError
from lntune.eval.metrics import caption
from lntune.eval.metrics.caption import approximate_tokenize, score_captions

FIX = Path(__file__).parent / "fixtures" / "metrics" / "caption"
REF1, PRED1 = FIX / "case1_karpathy.json", FIX / "case1_predictions.json"
REF2, PRED2 = FIX / "case2_karpathy.json", FIX / "case2_predictions.json"
needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="java is not installed")

# Official numbers: pycocoevalcap 1.2's COCOEvalCap.evaluate() on pycocotools COCO objects built from the
# test-split references and predictions (SPICE stubbed out), run once outside the repo.
# case1: Bleu_4 0.33970275556388957, METEOR 0.1784485333759643, ROUGE_L 0.5019337657468612,
#        CIDEr 0.20047174298948253.  case2: Bleu_4 0.0030637434226559097, METEOR 0.046523107542194575,
#        ROUGE_L 0.1751513262384596, CIDEr 0.07446389113012132.


@needs_java
def test_case1_equals_coco_caption_eval_and_library_cider(monkeypatch):
    seen = []
    real = caption._ptb_tokenize
    monkeypatch.setattr(caption, "_ptb_tokenize", lambda captions: seen.append(real(captions)) or seen[-1])
    result = score_captions(REF1, PRED1)
    assert result == {"CIDEr": 100 * 0.20047174298948253, "BLEU-4": 100 * 0.33970275556388957,
                      "ROUGE-L": 100 * 0.5019337657468612, "images": 300, "split": "test", "tokenizer": "ptb"}
    # pycocoevalcap's own Cider on the very token strings the scorer produced.
    from pycocoevalcap.cider.cider import Cider

    gts, res = seen
    assert len(gts) == 300 and all(len(v) == 4 for v in gts.values())
    assert result["CIDEr"] == 100 * Cider().compute_score(gts, res)[0]


@needs_java
def test_case2_equals_coco_caption_eval():
    result = score_captions(REF2, PRED2)
    assert (result["CIDEr"], result["BLEU-4"], result["ROUGE-L"]) == (
        100 * 0.07446389113012132, 100 * 0.0030637434226559097, 100 * 0.1751513262384596)


@pytest.mark.parametrize("text, ptb", [
    # Expected strings: pycocoevalcap's PTBTokenizer (Java) output for the same captions.
    ("A man's (red) hat, isn't it?", "a man 's -lrb- red -rrb- hat is n't it"),
    ("Two dogs play-fight on the grass.", "two dogs play-fight on the grass"),
    ('The image shows a "cute" cat; it\'s sleeping...', "the image shows a cute cat it 's sleeping"),
    ("A plate with 3.5 slices of pizza and 1,000 crumbs!", "a plate with 3.5 slices of pizza and 1,000 crumbs"),
    ("People at the U.S. open -- watching tennis.", "people at the u.s. open watching tennis"),
    ("A cat [sitting] on a {mat}: the end", "a cat -lsb- sitting -rsb- on a -lcb- mat -rcb- the end"),
    ("It can't be done, we'll see", "it ca n't be done we 'll see"),
    ("A woman's bag & a man\u2019s hat", "a woman 's bag & a man 's hat"),
    ("There's a 10% chance of rain at 5 p.m.", "there 's a 10 % chance of rain at 5 p.m."),
    ("dogs' bowls", "dogs bowls"),
    ("the bathroom.The tub\n", "the bathroom.the tub"),
])
def test_approximate_tokenizer_matches_ptb_on_common_cases(text, ptb):
    assert approximate_tokenize(text) == ptb


def test_without_java_the_result_is_marked_approximate(monkeypatch):
    monkeypatch.setattr(caption.shutil, "which", lambda name: None)
    with pytest.warns(UserWarning, match="java not found"):
        result = score_captions(REF1, PRED1)
    assert result["tokenizer"] == "approximate"
    # On this sample the fallback tokenizes all but one caption as PTB does (a prediction ending in
    # "St." becomes "st" instead of "st."), which changes no n-gram match: the scores are the official ones.
    assert (result["CIDEr"], result["BLEU-4"], result["ROUGE-L"]) == (
        100 * 0.20047174298948253, 100 * 0.33970275556388957, 100 * 0.5019337657468612)


def _tiny_references(tmp_path):
    images = [{"filename": f"im{i}.jpg", "split": "test", "sentences": [{"raw": f"a photo of {w}"}, {"raw": f"{w} here"}]}
              for i, w in enumerate(["a dog", "two cats", "a red bus"])]
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"images": images}))
    return path, [{"image_id": f"im{i}.jpg", "caption": c} for i, c in enumerate(["a dog", "cats", "a bus"])]


def test_meteor_is_opt_in(tmp_path, monkeypatch):
    calls = []

    class FakeMeteor:
        def compute_score(self, gts, res):
            calls.append(sorted(gts))
            return 0.25, [0.25] * len(gts)

    import pycocoevalcap.meteor.meteor as meteor_module

    refs, preds = _tiny_references(tmp_path)   # images without cocoid are keyed by file name
    monkeypatch.setattr(meteor_module, "Meteor", FakeMeteor)
    monkeypatch.setattr(caption.shutil, "which", lambda name: None)  # keeps this test free of Java
    with pytest.warns(UserWarning, match="java not found"):
        assert "METEOR" not in score_captions(refs, preds, meteor=True)
    monkeypatch.setattr(caption.shutil, "which", lambda name: "/usr/bin/java")
    monkeypatch.setattr(caption, "_ptb_tokenize", lambda c: {k: [approximate_tokenize(s) for s in v] for k, v in c.items()})
    assert "METEOR" not in score_captions(refs, preds)
    assert score_captions(refs, preds, meteor=True)["METEOR"] == 25.0
    assert calls == [["im0.jpg", "im1.jpg", "im2.jpg"]]


def test_split_selection_and_input_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(caption.shutil, "which", lambda name: None)
    monkeypatch.setattr(caption.warnings, "warn", lambda *a, **k: None)
    preds = json.loads(PRED1.read_text())
    assert score_captions(REF1, preds, split="val")["images"] == 50   # other splits' predictions ignored
    with pytest.raises(LntuneError, match=r"no images in split 'testing' \(splits here: test, train, val\)"):
        score_captions(REF1, preds, split="testing")
    test_ids = [im["cocoid"] for im in json.loads(REF1.read_text())["images"] if im["split"] == "test"]
    kept = [p for p in preds if p["image_id"] not in test_ids[:2]]
    with pytest.raises(LntuneError, match=rf"2 of 300 images have no prediction \(first: {test_ids[0]}, {test_ids[1]}\)"):
        score_captions(REF1, kept)
    with pytest.raises(LntuneError, match=r"1 predictions are for images not in the references \(first: '40468'; "
                                          r"image_id must be the references' cocoid integers\)"):
        score_captions(REF1, preds + [{"image_id": "40468", "caption": "x"}])
    with pytest.raises(LntuneError, match=r"item 400: second prediction for image 40468"):
        score_captions(REF1, preds + [{"image_id": 40468, "caption": "x"}])
    bad = tmp_path / "refs.json"
    bad.write_text('{"images": [\n{"split": "test",, }]}')
    with pytest.raises(LntuneError, match=r"refs.json:2:18: malformed JSON in a Karpathy split JSON"):
        score_captions(bad, preds)
    with pytest.raises(LntuneError, match=r"missing.json: file not found"):
        score_captions(REF1, tmp_path / "missing.json")


@needs_java
def test_empty_captions_and_odd_line_breaks_keep_alignment():
    # The official tokenizer writes one caption per line for Java; an empty caption must stay an empty
    # line, and a line break other than "\n" (which Java would split on) must not shift later captions.
    out = caption._ptb_tokenize({1: ["", "A dog."], 2: ["a\u2028b\rc"], 3: ["The end."]})
    assert out == {1: ["", "a dog"], 2: ["a b c"], 3: ["the end"]}
