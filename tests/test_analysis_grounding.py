"""`lntune analyze grounding`: exact ROC AUC, scores that do not depend on the batch, and a hand-built oracle
whose yes/no answer is a function of the image, so true and shuffled images must give different results."""

import json
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from test_eval_helpers import tiny_llava, write_tiny_benchmarks  # noqa: E402

from lntune.analysis.grounding import (  # noqa: E402
    first_token_ids, grounding_scores, grounding_table, roc_auc, shuffled_images, summarize, yes_no_questions,
    yes_no_scores)

# Grey levels of the oracle's images: the oracle says yes exactly to the bright ones.
BRIGHT, DARK = (190, 215, 240), (15, 40, 65)


@pytest.mark.parametrize("scores, labels, auc", [
    ([0.9, 0.1, 0.5, 0.4], [True, False, True, False], 1.0),   # every positive above every negative
    ([0.1, 0.9, 0.4, 0.5], [True, False, True, False], 0.0),
    ([0.5, 0.5, 0.5, 0.5], [True, False, True, False], 0.5),   # ties count half
    ([0.9, 0.3, 0.5, 0.7], [True, False, True, False], 0.75),  # 0.5 < 0.7: one of four pairs wrong
    ([2.0, 1.0, 1.0, 0.0, 1.0], [True, True, False, False, False], 5 / 6),  # (1 + 1 + 1) + (1 + 0.5 + 0.5) of 6
    ([1.0, 2.0], [True, True], None),  # one class only: undefined
])
def test_roc_auc_exact(scores, labels, auc):
    assert roc_auc(scores, labels) == auc


def test_summary_counts_positive_scores_as_yes():
    assert summarize([1.0, -1.0, 2.0, 0.5, 0.0], [True, False, False, True, True]) == {
        "n": 5, "accuracy": 60.0, "yes_rate": 60.0, "auc": 0.5}  # 3 of 6 pairs ordered


def _oracle():
    """A tiny LLaVA whose log P(yes) - log P(no) has the sign of the image's brightness.

    Vision: each patch embeds to channel 0 = +sum of its normalized pixels, channel 1 = -that; the pre-norm
    LayerNorm turns this into +-4 (the sign), layer 0 of the tower is made the identity. Projector: GELU(x) -
    GELU(-x) = x carries the sign to hidden dim 0. LLM: no text token has anything in dim 0; layer 0's
    attention averages dim 0 uniformly over the prefix into the last position; every other block is the
    identity; the LM head reads dim 0, +1 for the first tokens of Yes/yes and -1 for No/no.
    """
    model, processor = tiny_llava(seed=1)
    yes = first_token_ids(processor.tokenizer, ("Yes", "yes"))
    no = first_token_ids(processor.tokenizer, ("No", "no"))
    assert len(yes) == len(no) == 2
    with torch.no_grad():
        vision = model.model.vision_tower
        patch = vision.embeddings.patch_embedding.weight
        patch.zero_()
        patch[0], patch[1] = 1.0, -1.0
        vision.embeddings.position_embedding.weight.zero_()
        vision.pre_layrnorm.weight.fill_(1.0)
        vision.pre_layrnorm.bias.zero_()
        first = vision.encoder.layers[0]
        for linear in (first.self_attn.out_proj, first.mlp.fc2):
            linear.weight.zero_()
            linear.bias.zero_()
        projector = model.model.multi_modal_projector
        for linear in (projector.linear_1, projector.linear_2):
            linear.weight.zero_()
            linear.bias.zero_()
        projector.linear_1.weight[0, 0], projector.linear_1.weight[1, 0] = 1.0, -1.0
        projector.linear_2.weight[0, 0], projector.linear_2.weight[0, 1] = 1.0, -1.0
        llm = model.model.language_model
        llm.embed_tokens.weight[:, 0] = 0.0
        for layer in llm.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        attention = llm.layers[0].self_attn
        attention.q_proj.weight.zero_()  # equal attention scores: a uniform average over the prefix
        attention.v_proj.weight.zero_()
        attention.v_proj.weight[0, 0] = 1.0
        attention.o_proj.weight[0, 0] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[yes, 0] = 5.0
        model.lm_head.weight[no, 0] = -5.0
    return model.eval(), processor


def _oracle_benchmarks(root: Path) -> tuple[Path, Path]:
    """POPE (3 splits) and MME existence files whose labels say whether each image is bright."""
    data, images = root / "eval", root / "images"
    images.mkdir(parents=True)
    levels = [BRIGHT[0], DARK[0], BRIGHT[1], DARK[1], BRIGHT[2], DARK[2], DARK[0], BRIGHT[0]]
    names = []
    for k, level in enumerate(levels):
        names.append(f"pope_{k}.png")
        Image.new("RGB", (32, 32), (level,) * 3).save(images / names[-1])
    (data / "pope").mkdir(parents=True)
    for split in ("random", "popular", "adversarial"):
        rows = [{"question_id": 2 * k + j + 1, "image": name, "text": f"Is there a {thing} in the image?",
                 "label": "yes" if levels[k] > 128 else "no"}
                for k, name in enumerate(names) for j, thing in enumerate(("ball", "tree"))]
        (data / "pope" / f"coco_pope_{split}.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    mme = data / "mme" / "existence"
    mme.mkdir(parents=True)
    for k, level in enumerate(levels[:6]):
        Image.new("RGB", (32, 32), (level,) * 3).save(mme / f"{k}.png")
        answer = "Yes" if level > 128 else "No"
        (mme / f"{k}.txt").write_text(f"Is there a ball in this image? Please answer yes or no.\t{answer}\n"
                                      f"Is there a box in this image? Please answer yes or no.\t{answer}\n")
    return data, images


@pytest.fixture(scope="module")
def oracle():
    return _oracle()


def test_oracle_true_images_separate_and_shuffled_images_do_not(oracle, tmp_path):
    model, processor = oracle
    data, images = _oracle_benchmarks(tmp_path)
    result = grounding_scores(model, processor, data, images, seed=3, batch_size=5, progress=False)
    groups = result["groups"]
    assert list(groups) == ["pope/random", "pope/popular", "pope/adversarial", "pope", "mme/existence", "mme",
                            "overall"]
    for name, group in groups.items():
        assert group["true"]["accuracy"] == 100.0 and group["true"]["auc"] == 1.0, name
    assert groups["pope"]["true"]["n"] == 48 and groups["mme"]["true"]["n"] == 12
    assert groups["pope"]["true"]["yes_rate"] == 50.0

    # With shuffled images the oracle is right exactly where the swapped-in image has the same brightness.
    bright = {p: Image.open(p).getpixel((0, 0))[0] > 128 for p in {Path(q["image"]) for q in result["questions"]}}
    expected = 0
    for q in result["questions"]:
        assert (q["true"] > 0) == q["label"]
        assert (q["shuffled"] > 0) == bright[Path(q["shuffled_image"])]
        expected += bright[Path(q["shuffled_image"])] == q["label"]
    shuffled = groups["overall"]["shuffled"]
    assert shuffled["accuracy"] == round(100 * expected / 60, 2) < 90.0
    assert shuffled["auc"] < 0.9
    assert groups["overall"]["difference"]["accuracy"] == round(100.0 - shuffled["accuracy"], 2)
    low, high = groups["overall"]["difference"]["accuracy_interval"]
    assert 0 < low <= groups["overall"]["difference"]["accuracy"] <= high
    # Images move only within a task, and the permutation is the seed's.
    assert all(("mme" in q["id"]) == ("/mme/" in q["shuffled_image"]) for q in result["questions"])
    assert "overall" in grounding_table(result)


def test_identical_inputs_give_identical_scores_whatever_the_batch(tmp_path):
    model, processor = tiny_llava(seed=0)
    data, images = write_tiny_benchmarks(tmp_path)
    questions = yes_no_questions(processor, data, images)
    assert len(questions) == 12 + 8  # the fixture's POPE and MME questions
    prompts, paths = [q.prompt for q in questions], [q.image for q in questions]
    ids = [q.id for q in questions]
    first = yes_no_scores(model, processor, prompts, paths, ids, batch_size=4, progress=False)
    assert yes_no_scores(model, processor, prompts, paths, ids, batch_size=4, progress=False) == first
    alone = yes_no_scores(model, processor, prompts, paths, ids, batch_size=1, progress=False)
    together = yes_no_scores(model, processor, prompts, paths, ids, batch_size=len(prompts), progress=False)
    assert len(set(first)) > 5
    assert max(abs(a - b) for a, b in zip(alone, first)) < 1e-5
    assert max(abs(a - b) for a, b in zip(alone, together)) < 1e-5


def test_shuffle_is_seeded_and_stays_within_a_task(tmp_path):
    _, processor = tiny_llava(seed=0)
    data, images = write_tiny_benchmarks(tmp_path)
    questions = yes_no_questions(processor, data, images)
    a, b, c = shuffled_images(questions, 0), shuffled_images(questions, 0), shuffled_images(questions, 1)
    assert a == b and a != c
    for task in ("pope", "mme"):
        own = sorted(str(q.image) for q in questions if q.task == task)
        assert sorted(str(p) for p, q in zip(a, questions) if q.task == task) == own


def test_analyze_grounding_command(oracle, tmp_path, capsys):
    from lntune.cli import main

    model, processor = oracle
    model_dir = tmp_path / "oracle"
    model.save_pretrained(model_dir)
    processor.save_pretrained(model_dir)
    data, images = _oracle_benchmarks(tmp_path / "bench")
    out = tmp_path / "out"
    argv = ["analyze", "grounding", "--model", str(model_dir), "--data-root", str(data), "--image-root",
            str(images), "--limit", "4", "--batch-size", "3", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[1].startswith("group") and "pope/adversarial" in printed
    written = json.loads((out / "grounding.json").read_text())
    assert written["groups"]["pope/random"]["true"] == {"n": 4, "accuracy": 100.0, "yes_rate": 50.0, "auc": 1.0}
    assert len(written["questions"]) == 3 * 4 + 4 and (out / "grounding.png").stat().st_size > 0
    assert main(argv + ["--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["groups"] == written["groups"] and "questions" not in summary
    assert main(["analyze", "grounding", "--model", str(model_dir)]) == 2
    assert "--data-root is needed" in capsys.readouterr().err


def test_report_table_has_the_shuffled_image_row():
    from lntune.reporting import grounding_markdown

    def group(n, true, shuffled, difference):
        return {"true": dict(zip(("n", "accuracy", "yes_rate", "auc"), (n, *true))),
                "shuffled": dict(zip(("n", "accuracy", "yes_rate", "auc"), (n, *shuffled))),
                "difference": difference}

    result = {"seed": 0, "groups": {
        "pope": group(270, (80.0, 50.0, 0.9), (52.5, 55.0, 0.51),
                      {"accuracy": 27.5, "auc": 0.39, "accuracy_interval": [22.0, 33.1], "auc_interval": [0.33, 0.45]}),
        "mme/existence": group(30, (70.0, 40.0, 0.8), (50.0, 40.0, None),
                               {"accuracy": 20.0, "auc": None, "accuracy_interval": [0.0, 40.0], "auc_interval": None}),
    }}
    assert grounding_markdown(result, "LayerNorm").splitlines()[:5] == [
        "| model | POPE acc | MME existence acc | POPE AUC |",
        "|---|---:|---:|---:|",
        "| LayerNorm | 80.0 | 70.0 | 0.900 |",
        "| LayerNorm, shuffled images | 52.5 | 50.0 | 0.510 |",
        "| difference (95% interval) | +27.5 [+22.0, +33.1] | +20.0 [+0.0, +40.0] | +0.390 [+0.330, +0.450] |"]
    assert "questions: pope 270, mme/existence 30;" in grounding_markdown(result, "LayerNorm")
    assert grounding_markdown({"seed": 0, "groups": {}}, "x") == ""
