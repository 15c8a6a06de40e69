"""The synthetic world generator: determinism, official formats, benchmark procedures, train/eval disjointness.

    python -m pytest -q tests/test_world_generate.py
"""

import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from lntune.cli import main as cli_main
from lntune.errors import LntuneError
from lntune.world import instruct
from lntune.world.benchmarks import MME_SUFFIX
from lntune.world.generate import generate_world, load_world
from lntune.world.presets import get_preset
from lntune.world.scenes import CATEGORIES, COLORS, sample_scene

SMOKE = get_preset("smoke")
NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return generate_world(tmp_path_factory.mktemp("w") / "smoke", "smoke", seed=0, progress=False)


@pytest.fixture(scope="module")
def truth(world):
    w = load_world(world)
    return w, {e["file"]: e for e in w["images"]}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _json_lines(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_same_seed_gives_identical_bytes_and_other_seed_differs(world, tmp_path):
    # another process with another string-hash seed: no output may depend on set or dict hashing order
    again = tmp_path / "again"
    subprocess.run([sys.executable, "-m", "lntune.cli", "world", "generate", "--out", str(again), "--preset", "smoke",
                    "--quiet"], check=True, env={**os.environ, "PYTHONHASHSEED": "12345"}, capture_output=True)
    first, second = _files(world), _files(again)
    assert sorted(first) == sorted(second)
    assert [name for name in first if first[name] != second[name]] == []
    other = generate_world(tmp_path / "other", "smoke", seed=1, progress=False)
    assert (other / "world.json").read_bytes() != (world / "world.json").read_bytes()


def test_layout_and_sizes(world, truth):
    w, by_file = truth
    expected = ["world.json", "pretrain.json", "instruct/conversation.json", "instruct/detail.json",
                "instruct/complex_reasoning.json", "instruct/mixed.json", "eval/vqav2/questions.json",
                "eval/vqav2/annotations.json", "eval/coco/dataset_coco.json", "eval/flickr30k/dataset_flickr30k.json"]
    expected += [f"eval/pope/coco_pope_{s}.json" for s in ("random", "popular", "adversarial")]
    for rel in expected:
        assert (world / rel).is_file(), rel
    splits = Counter(e["split"] for e in w["images"])
    pools = Counter(e["pool"] for e in w["images"])
    assert splits["train"] == SMOKE.train_images == 40
    assert pools["pope"] == 4 and pools["vqav2"] == 4 and pools["coco"] == pools["flickr30k"] == 6
    assert all(pools[f"mme/{t}"] == 4 for t in ("existence", "count", "position", "color"))
    assert len(list((world / "images").glob("*.png"))) == len(w["images"])
    from PIL import Image
    for e in w["images"]:
        with Image.open(world / "images" / e["file"]) as im:
            assert im.size == (64, 64) and im.mode == "RGB"
        assert 1 <= len(e["objects"]) <= 4
        cells = [tuple(o["cell"]) for o in e["objects"]]
        assert len(set(cells)) == len(cells)
        for o in e["objects"]:
            x0, y0, x1, y1 = o["bbox"]
            assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
            assert o["category"] in CATEGORIES and o["color"] in w["colors"] and o["position"] in w["positions"]


def test_statistics_are_the_training_images_counts(truth):
    w, _ = truth
    train = [e for e in w["images"] if e["split"] == "train"]
    counts = Counter(c for e in train for c in {o["category"] for o in e["objects"]})
    assert w["statistics"]["images"] == 40
    assert w["statistics"]["category_counts"] == {c: counts[c] for c in CATEGORIES}
    pair = Counter((a, b) for e in train for a in {o["category"] for o in e["objects"]}
                   for b in {o["category"] for o in e["objects"]} if a != b)
    assert w["statistics"]["cooccurrence"]["tree"]["ball"] == pair[("tree", "ball")]
    assert w["statistics"]["popular_order"] == sorted(CATEGORIES, key=lambda c: (-counts[c], CATEGORIES.index(c)))


def test_cooccurrence_is_not_uniform():
    scenes = [sample_scene(random.Random(i), 2, 64, 4) for i in range(1500)]
    pair = Counter((a, b) for s in scenes for a in s.categories() for b in s.categories() if a < b)
    assert pair[("car", "house")] > 5 * pair[("car", "fish")]
    assert pair[("boat", "fish")] > 5 * pair[("cup", "fish")]


def _check_llava(samples, by_file, turns=None):
    for s in samples:
        assert set(s) == {"id", "image", "conversations"}
        assert by_file[s["image"]]["split"] == "train"
        conv = s["conversations"]
        assert [t["from"] for t in conv] == ["human", "gpt"] * (len(conv) // 2) and len(conv) % 2 == 0
        if turns:
            assert len(conv) // 2 in turns
        assert all(t["value"].strip() for t in conv)
        assert sum(t["value"].count("<image>") for t in conv) == 1 and "<image>" in conv[0]["value"]
    assert len({s["id"] for s in samples}) == len(samples)


def test_pretrain_and_instruct_formats(world, truth):
    _, by_file = truth
    pretrain = json.loads((world / "pretrain.json").read_text())
    assert len(pretrain) == 40
    _check_llava(pretrain, by_file, turns={1})
    typed = {}
    for kind in ("conversation", "detail", "complex_reasoning"):
        typed[kind] = json.loads((world / "instruct" / f"{kind}.json").read_text())
        assert len(typed[kind]) == SMOKE.instruct_per_type == 12
        _check_llava(typed[kind], by_file)
        assert all(s["conversations"][0]["value"].startswith("<image>\n") for s in typed[kind])
    assert all(2 <= len(s["conversations"]) // 2 <= 4 for s in typed["conversation"])
    assert all(len(s["conversations"]) == 2 and len(s["conversations"][1]["value"].split()) >= 8
               for s in typed["detail"])
    typed["vqa"] = json.loads((world / "instruct" / "vqa.json").read_text())
    assert len(typed["vqa"]) == SMOKE.vqa_samples == 24
    _check_llava(typed["vqa"], by_file)
    assert all(len(s["conversations"]) == 2 for s in typed["vqa"])
    mixed = json.loads((world / "instruct" / "mixed.json").read_text())
    assert sorted(s["id"] for s in mixed) == sorted(s["id"] for k in typed.values() for s in k)


def test_conversations_are_short_grounded_turns_with_balanced_existence_answers():
    rng = random.Random(0)
    answers = instruct.AlternatingAnswers()
    scenes = [sample_scene(rng, 2, 64, 4, file="x.png") for _ in range(300)]
    samples = [instruct.conversation_sample(str(i), scene, rng, 2, answers) for i, scene in enumerate(scenes)]
    assert all(2 <= len(s["conversations"]) // 2 <= 4 for s in samples)
    pairs = [(c[k]["value"].removeprefix("<image>\n"), c[k + 1]["value"]) for s in samples
             for c in [s["conversations"]] for k in range(0, len(c), 2)]
    existence = [a for _, a in pairs if a.startswith(("Yes, there", "No, there is no", "No, I don't see"))]
    yes = [a for a in existence if a.startswith("Yes")]
    no = [a for a in existence if a.startswith("No")]
    assert len(existence) > 200 and abs(len(yes) - len(no)) <= 1  # alternating answers: balanced
    assert all(a.endswith(" in the image.") or a.endswith(" here.") for a in no)
    assert sum(q.startswith("What color") or q.startswith("What is the color") or q.startswith("Which color")
               for q, _ in pairs) > 50
    assert sum(q.startswith("How many") or q.startswith("What is the number") for q, _ in pairs) > 50
    assert sum(q.startswith(("Where", "In which part", "What is in the", "What object", "What can you see in"))
               for q, _ in pairs) > 50
    assert all(len(a.split()) <= 14 for _, a in pairs)  # one short sentence each
    # every answer is true of its scene: an existence answer names only categories that are there
    for scene, sample in zip(scenes, samples):
        turns = sample["conversations"]
        for k in range(0, len(turns), 2):
            answer = turns[k + 1]["value"]
            if answer.startswith("No, there is no "):
                assert answer.split("no ", 1)[1].rsplit(" in the image", 1)[0] not in scene.categories()


def test_the_paper_mix_is_conversation_and_complex_reasoning_one_to_one(world):
    mix = json.loads((world / "instruct" / "paper_mix.json").read_text())
    ids = {kind: [s["id"] for s in json.loads((world / "instruct" / f"{kind}.json").read_text())]
           for kind in ("conversation", "complex_reasoning")}
    assert sorted(s["id"] for s in mix) == sorted(ids["conversation"] + ids["complex_reasoning"])
    assert len(ids["conversation"]) == len(ids["complex_reasoning"])
    assert [s["id"] for s in mix] != ids["conversation"] + ids["complex_reasoning"]  # shuffled


def test_pope_follows_the_official_procedure(world, truth):
    w, by_file = truth
    stats = w["statistics"]
    popular = stats["popular_order"]
    rows = {s: _json_lines(world / "eval" / "pope" / f"coco_pope_{s}.json")
            for s in ("random", "popular", "adversarial")}
    for split, qs in rows.items():
        assert len(qs) == 6 * SMOKE.pope_images
        assert [q["question_id"] for q in qs] == list(range(1, len(qs) + 1))
        assert all(set(q) == {"question_id", "image", "text", "label"} for q in qs)
        for k in range(0, len(qs), 6):
            group = qs[k:k + 6]
            image = group[0]["image"]
            assert all(q["image"] == image for q in group) and by_file[image]["pool"] == "pope"
            present = list(dict.fromkeys(o["category"] for o in by_file[image]["objects"]))
            assert [q["label"] for q in group] == ["yes", "no"] * 3
            asked = [re.fullmatch(r"Is there an? (\w+) in the image\?", q["text"]).group(1) for q in group]
            assert all(("an " in q["text"]) == (a[0] in "aeiou") for q, a in zip(group, asked))
            assert asked[0::2] == present[:3]
            assert len(set(asked)) == 6 and not set(asked[1::2]) & set(present)
            for j in range(3):
                allowed = [c for c in CATEGORIES if c not in present and c not in asked[:2 * j + 1]]
                if split == "popular":
                    assert asked[2 * j + 1] == next(c for c in popular if c in allowed)
                if split == "adversarial":
                    co = stats["cooccurrence"][asked[2 * j]]
                    best = max(co[c] for c in allowed)
                    assert co[asked[2 * j + 1]] == best
                    assert asked[2 * j + 1] == next(c for c in CATEGORIES if c in allowed and co[c] == best)
    # positives (and their ids) are shared by the three splits, as in the released files
    assert [q for q in rows["random"] if q["label"] == "yes"] == [q for q in rows["popular"] if q["label"] == "yes"]


def test_mme_pairs_are_right(world, truth):
    _, by_file = truth
    for task in ("existence", "count", "position", "color"):
        folder = world / "eval" / "mme" / task
        pngs = sorted(folder.glob("*.png"))
        assert len(pngs) == 4 and sorted(p.stem for p in folder.glob("*.txt")) == [p.stem for p in pngs]
        for png in pngs:
            assert png.read_bytes() == (world / "images" / png.name).read_bytes()
            lines = png.with_suffix(".txt").read_text().splitlines()
            assert [ln.split("\t")[1] for ln in lines] == ["Yes", "No"]
            objs = by_file[png.name]["objects"]
            for line in lines:
                q, a = line.split("\t")
                assert q.endswith(MME_SUFFIX) and q.count("\t") == 0
                assert _mme_truth(task, q, objs) == (a == "Yes"), q


def _mme_truth(task, q, objs):
    cats = [o["category"] for o in objs]
    if task == "existence":
        return re.match(r"Is there an? (\w+) in this image", q).group(1) in cats
    if task == "color":
        color, cat = re.match(r"Is there an? (\w+) (\w+) in the image", q).groups()
        return any(o["color"] == color and o["category"] == cat for o in objs)
    if task == "count":
        m = re.search(r"(only|exactly) one (\w+) in", q)
        if m:
            return cats.count(m.group(2)) == 1
        n, noun = re.search(r"(?:Are there|a total of) (\w+) (\w+) in", q).groups()
        cat = next(c for c in CATEGORIES if noun in (c, c + "s", c + "es"))
        return cats.count(cat) == NUMBERS[n]
    a, rel, b = re.match(r"Is the (\w+) (to the left of|to the right of|above|below) the (\w+)\?", q).groups()
    (ra, ca), (rb, cb) = [next(o["cell"] for o in objs if o["category"] == x) for x in (a, b)]
    return {"to the left of": ca < cb, "to the right of": ca > cb, "above": ra < rb, "below": ra > rb}[rel]


def test_vqav2_files(world, truth):
    _, by_file = truth
    qs = json.loads((world / "eval" / "vqav2" / "questions.json").read_text())
    ann = json.loads((world / "eval" / "vqav2" / "annotations.json").read_text())
    for f in (qs, ann):
        assert {"info", "task_type", "data_type", "data_subtype", "license"} <= set(f)
    assert len(qs["questions"]) == len(ann["annotations"]) == SMOKE.vqav2_questions == 12
    by_id = {a["question_id"]: a for a in ann["annotations"]}
    for q in qs["questions"]:
        a = by_id[q["question_id"]]
        assert q["question_id"] // 1000 == q["image_id"] == a["image_id"]
        assert q["image"] == f"vqav2_{q['image_id']:06d}.png" and by_file[q["image"]]["pool"] == "vqav2"
        assert a["answer_type"] in {"yes/no", "number", "other"}
        assert [x["answer_id"] for x in a["answers"]] == list(range(1, 11))
        assert all(x["answer_confidence"] in {"yes", "maybe", "no"} for x in a["answers"])
        counts = Counter(x["answer"] for x in a["answers"])
        assert counts.most_common(1)[0][0] == a["multiple_choice_answer"]
        assert counts[a["multiple_choice_answer"]] > max([n for x, n in counts.items() if x != a["multiple_choice_answer"]] or [0])
        objs = by_file[q["image"]]["objects"]
        m = re.fullmatch(r"How many (\w+) are (?:there|in the image)\?", q["question"])
        if m:
            noun = m.group(1)
            cat = next((c for c in CATEGORIES if noun in (c + "s", c + "es", c)), None)
            expected = len(objs) if noun == "objects" else sum(o["category"] == cat for o in objs)
            assert a["multiple_choice_answer"] == str(expected)
        m = re.fullmatch(r"What color is the (\w+)\?", q["question"])
        if m:
            assert a["multiple_choice_answer"] == next(o["color"] for o in objs if o["category"] == m.group(1))
    assert len({a["answer_type"] for a in ann["annotations"]}) >= 2


def test_karpathy_files(world, truth):
    _, by_file = truth
    lengths = {}
    for folder, dataset in (("coco", "coco"), ("flickr30k", "flickr30k")):
        data = json.loads((world / "eval" / folder / f"dataset_{folder}.json").read_text())
        assert data["dataset"] == dataset
        images = data["images"]
        assert Counter(i["split"] for i in images) == {"train": 12, "val": 2, "test": 4}
        sentids = [s for i in images for s in i["sentids"]]
        assert sentids == list(range(len(sentids)))
        for k, i in enumerate(images):
            assert i["imgid"] == k and len(i["sentences"]) == 5
            assert [s["sentid"] for s in i["sentences"]] == i["sentids"]
            assert all(s["raw"] and s["tokens"] == re.findall(r"[a-z0-9]+", s["raw"].lower()) for s in i["sentences"])
            assert ("cocoid" in i) == (dataset == "coco")
            if dataset == "coco":
                assert i["cocoid"] == by_file[i["filename"]]["image_id"]
            expected = "train" if i["split"] == "train" else folder
            assert by_file[i["filename"]]["pool"] == expected
        lengths[dataset] = sum(len(s["tokens"]) for i in images for s in i["sentences"]) / (5 * len(images))
    assert lengths["flickr30k"] > 1.3 * lengths["coco"]


def test_evaluation_images_never_train(world, truth):
    _, by_file = truth
    train_use = {s["image"] for s in json.loads((world / "pretrain.json").read_text())}
    for kind in ("conversation", "detail", "complex_reasoning", "mixed"):
        train_use |= {s["image"] for s in json.loads((world / "instruct" / f"{kind}.json").read_text())}
    eval_use = set()
    for folder in ("coco", "flickr30k"):
        for i in json.loads((world / "eval" / folder / f"dataset_{folder}.json").read_text())["images"]:
            (train_use if i["split"] == "train" else eval_use).add(i["filename"])
    for split in ("random", "popular", "adversarial"):
        eval_use |= {q["image"] for q in _json_lines(world / "eval" / "pope" / f"coco_pope_{split}.json")}
    eval_use |= {q["image"] for q in json.loads((world / "eval" / "vqav2" / "questions.json").read_text())["questions"]}
    eval_use |= {p.name for p in (world / "eval" / "mme").rglob("*.png")}
    assert train_use and eval_use and not train_use & eval_use
    assert {by_file[f]["split"] for f in train_use} == {"train"}
    assert {by_file[f]["split"] for f in eval_use} == {"eval"}


def test_cli_generate_refuses_to_overwrite_then_forces(tmp_path, capsys):
    out = tmp_path / "w"
    assert cli_main(["world", "generate", "--out", str(out), "--preset", "smoke", "--quiet"]) == 0
    assert cli_main(["world", "generate", "--out", str(out), "--preset", "smoke", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0] and str(out) in err[0]
    assert cli_main(["world", "generate", "--out", str(out), "--preset", "smoke", "--seed", "3", "--quiet",
                     "--force"]) == 0
    assert load_world(out)["seed"] == 3
    assert not list(tmp_path.glob(".*"))


def test_unknown_preset_and_missing_world_are_one_line_errors(tmp_path):
    with pytest.raises(LntuneError, match="unknown world preset 'huge'"):
        generate_world(tmp_path / "x", "huge")
    with pytest.raises(LntuneError, match="world.json: not found"):
        load_world(tmp_path)


def test_vqa_samples_are_short_answers_or_brief_captions_and_yes_no_answers_alternate_per_kind():
    rng = random.Random(0)
    answers = instruct.AlternatingAnswers()
    samples = [instruct.vqa_sample(str(i), sample_scene(rng, 2, 64, 4, file="x.png"), rng, 2, answers)
               for i in range(600)]
    pairs = [(s["conversations"][0]["value"].removeprefix("<image>\n"), s["conversations"][1]["value"]) for s in samples]
    captions = [a for q, a in pairs if q in instruct.BRIEF_CAPTION_PROMPTS + instruct.LONG_CAPTION_PROMPTS]
    assert 0.06 < len(captions) / len(pairs) < 0.18
    replies = [a for q, a in pairs if q not in instruct.BRIEF_CAPTION_PROMPTS + instruct.LONG_CAPTION_PROMPTS]
    assert all(len(a.split()) <= 2 for a in replies)
    yes_no = [(q, a) for q, a in pairs if a in ("Yes", "No")]
    assert 0.62 < len(yes_no) / len(pairs) < 0.78
    instructed = [q for q, _ in yes_no if q.endswith(" Please answer yes or no.")]
    assert 0.4 < len(instructed) / len(yes_no) < 0.6
    with_color = [(q, a) for q, a in yes_no if any(f" {c} " in q for c in COLORS)]
    plain = [(q, a) for q, a in yes_no if (q, a) not in with_color]
    assert 0.1 < len(with_color) / len(yes_no) < 0.32
    for kind in (with_color, plain):  # yes, no, yes, ... in file order, per kind
        assert [a for _, a in kind] == ["Yes", "No"] * (len(kind) // 2) + ["Yes"] * (len(kind) % 2)
    assert answers.asked == {"color": len(with_color), "existence": len(plain)}


def test_colour_existence_questions_ask_about_large_objects_in_their_colour_or_one_none_of_its_kind_has():
    rng = random.Random(1)
    asked = 0
    for k in range(200):
        scene = sample_scene(rng, 2, 64, 4, file="x.png")
        got = instruct.q_color_exists(scene, rng, lambda: k % 2 == 0)
        if got is None:
            assert all(any(p.size == "small" for p in scene.objects if p.category == o.category) for o in scene.objects)
            continue
        asked += 1
        question, answer = got
        color, category = next((c, question.split(f" {c} ")[1].split()[0]) for c in COLORS if f" {c} " in question)
        kind = [o for o in scene.objects if o.category == category]
        assert kind and all(o.size == "large" for o in kind), question
        assert answer == ("Yes" if k % 2 == 0 else "No") == ("Yes" if color in {o.color for o in kind} else "No")
    assert asked > 100
