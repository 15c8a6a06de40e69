"""The world's evaluation files, each in its benchmark's official format and built by its official procedure.

- POPE (`pope_questions`): per image, its first 3 distinct categories are the positives; each is followed
  by one absent category, chosen uniformly (random), as the most frequent absent category (popular), or as
  the absent category that co-occurs most with that positive (adversarial); a category is never asked twice
  about one image. Frequencies and co-occurrences come from the TRAINING images (what a model has seen).
- MME (`mme_pairs`): two questions per image, the "Yes" one first, both ending "Please answer yes or no.".
- VQAv2 (`vqav2_files`): questions + annotations with 10 human-style answers each.
- Karpathy splits (`karpathy_file`): 5 captions per image, COCO-style or Flickr30k-style.
"""

from __future__ import annotations

import random
from collections import Counter

from lntune.world import instruct
from lntune.world import language as L
from lntune.world.scenes import CATEGORIES, COLORS, Scene, by_frequency, position_names

POPE_SPLITS = ("random", "popular", "adversarial")
MME_TASKS = ("existence", "count", "position", "color")
MME_SUFFIX = " Please answer yes or no."


def pope_question(question_id: int, image: str, category: str, label: str) -> dict:
    return {"question_id": question_id, "image": image, "text": f"Is there {L.article(category)} in the image?",
            "label": label}


def pope_questions(scenes: list[Scene], split: str, statistics: dict, rng: random.Random) -> list[dict]:
    """One POPE split file's rows (question_id restarts at 1 in every split, as in the released files)."""
    popular = by_frequency(statistics["category_counts"])
    cooccur = {c: by_frequency(statistics["cooccurrence"][c]) for c in CATEGORIES}
    rows = []
    for scene in scenes:
        present = scene.categories()
        if len(present) < 3:
            raise ValueError(f"POPE image {scene.file} has fewer than 3 categories")
        asked: list[str] = []
        for positive in present[:3]:
            asked.append(positive)
            rows.append(pope_question(len(rows) + 1, scene.file, positive, "yes"))
            allowed = [c for c in CATEGORIES if c not in asked and c not in present]
            if split == "random":
                negative = rng.choice(allowed)
            else:
                order = popular if split == "popular" else cooccur[positive]
                negative = next(c for c in order if c in allowed)
            asked.append(negative)
            rows.append(pope_question(len(rows) + 1, scene.file, negative, "no"))
    return rows


def mme_pair(task: str, scene: Scene, rng: random.Random) -> list[tuple[str, str]]:
    """[(question, "Yes"), (question, "No")] for one MME image of the given subtask."""
    if task == "existence":
        yes = rng.choice(scene.categories())
        no = instruct.absent_category(scene, rng)
        pair = (f"Is there {L.article(yes)} in this image?", f"Is there {L.article(no)} in this image?")
    elif task == "count":
        cat = max(scene.categories(), key=scene.count)  # the most repeated category makes counting matter
        n = scene.count(cat)
        wrong = n + rng.choice([-1, 1]) if n > 1 else n + 1

        def ask(k):
            if k == 1:
                return rng.choice([f"Is there only one {cat} in the image?", f"Is there exactly one {cat} in this image?"])
            return rng.choice([f"Are there {L.number_word(k)} {L.plural(cat)} in the image?",
                               f"Is there a total of {L.number_word(k)} {L.plural(cat)} in the picture?"])
        pair = (ask(n), ask(wrong))
    elif task == "position":
        a, b = rng.sample(L.distinct_by(scene), 2)
        rel = L.relation(a, b)
        wrong = {"to the left of": "to the right of", "to the right of": "to the left of", "above": "below",
                 "below": "above"}[rel]
        pair = (f"Is the {a.category} {rel} the {b.category}?", f"Is the {a.category} {wrong} the {b.category}?")
    elif task == "color":
        o = rng.choice(scene.objects)
        taken = {p.color for p in scene.objects if p.category == o.category}
        wrong = rng.choice([c for c in COLORS if c not in taken])
        pair = (f"Is there {L.article(o.color + ' ' + o.category)} in the image?",
                f"Is there {L.article(wrong + ' ' + o.category)} in the image?")
    else:
        raise ValueError(f"unknown MME task {task}")
    return [(pair[0] + MME_SUFFIX, "Yes"), (pair[1] + MME_SUFFIX, "No")]


def mme_accepts(task: str, scene: Scene) -> bool:
    """Whether a scene can carry an MME question pair of this subtask."""
    if task == "position":
        return len(L.distinct_by(scene)) >= 2
    if task == "count":
        return len(scene.objects) >= 2
    return True


# --- VQAv2 ----------------------------------------------------------------------------------------------

def _human_answers(canonical: str, same: list[str], wrong: list[str], rng: random.Random) -> list[str]:
    """10 answers as crowd workers give them: mostly the canonical answer, some equivalent spellings
    (case, articles, number words, synonyms) and the odd disagreement. The canonical answer stays the mode."""
    answers = []
    for _ in range(10):
        r = rng.random()
        if r < 0.08 and wrong:
            answers.append(rng.choice(wrong))
        elif r < 0.3 and same:
            answers.append(rng.choice(same))
        else:
            answers.append(canonical)
    while True:
        counts = Counter(answers)
        if all(counts[canonical] > n for a, n in counts.items() if a != canonical):
            return answers
        answers[next(i for i, a in enumerate(answers) if a != canonical)] = canonical


def _vqa_yes_no(truth: bool):
    canonical = "yes" if truth else "no"
    other = "no" if truth else "yes"
    return canonical, [canonical.capitalize(), canonical + "."], [other]


def vqa_question(scene: Scene, rng: random.Random, kind: str, grid: int):
    """(question, question_type, answer_type, canonical, equivalent answers, wrong answers) or None."""
    cats = scene.categories()
    if kind == "yes/no":
        sub = rng.choice(["exists", "exists", "color", "where"])
        if sub == "exists":
            truth = rng.random() < 0.5
            cat = rng.choice(cats) if truth else instruct.absent_category(scene, rng)
            return (f"Is there {L.article(cat)} in the image?", "is there a", "yes/no", *_vqa_yes_no(truth))
        objs = L.distinct_by(scene)
        if not objs:
            return None
        o = rng.choice(objs)
        truth = rng.random() < 0.5
        if sub == "color":
            color = o.color if truth else rng.choice([c for c in COLORS if c != o.color])
            return (f"Is the {o.category} {color}?", "is the", "yes/no", *_vqa_yes_no(truth))
        position = o.position if truth else rng.choice([p for p in position_names(grid) if p != o.position])
        return (f"Is the {o.category} {L.position_phrase(position)}?", "is the", "yes/no", *_vqa_yes_no(truth))
    if kind == "number":
        if rng.random() < 0.3:
            n, q = len(scene.objects), rng.choice(["How many objects are there?", "How many objects are in the picture?"])
        else:
            cat = rng.choice(cats)
            n, q = scene.count(cat), rng.choice([f"How many {L.plural(cat)} are there?",
                                                 f"How many {L.plural(cat)} are in the image?"])
        return (q, "how many", "number", str(n), [L.number_word(n), L.capitalize(L.number_word(n))],
                [str(n + 1)] + ([str(n - 1)] if n > 1 else []))
    # "other"
    sub = rng.choice(["color", "what_at", "color", "what_at", "size", "left_of"])
    objs = L.distinct_by(scene)
    if sub in ("color", "size", "left_of") and not objs:
        sub = "what_at"
    if sub == "color":
        o = rng.choice(objs)
        near = [c for c in COLORS if c != o.color]
        return (f"What color is the {o.category}?", "what color is the", "other", o.color,
                [o.color.capitalize(), f"{o.color}.", f"it is {o.color}"], [rng.choice(near)])
    if sub == "size":
        o = rng.choice(objs)
        return (f"What size is the {o.category}?", "what", "other", o.size, [o.size.capitalize(), f"{o.size}."],
                ["medium"])
    if sub == "left_of":
        pairs = [(a, b) for a in objs for b in objs if L.relation(a, b) == "to the left of"]
        if pairs:
            a, b = rng.choice(pairs)
            return (f"What is to the left of the {b.category}?", "what is", "other", a.category,
                    [L.article(a.category), f"the {a.category}", f"{a.color} {a.category}"],
                    [L.plural(a.category)])
    o = rng.choice(scene.objects)
    return (f"What is in the {o.position} of the image?", "what is in the", "other", o.category,
            [L.article(o.category), f"the {o.category}", o.category.capitalize(), f"{o.color} {o.category}"],
            [L.plural(o.category)])


VQA_KINDS = {"yes/no": 0.38, "number": 0.12, "other": 0.50}
VQA_HEADER = {
    "info": {"description": "lntune synthetic world, VQAv2-format questions", "version": "2.0"},
    "license": {"name": "CC BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"},
    "data_type": "lntune-world",
    "data_subtype": "val",
}


def vqav2_files(scenes: list[Scene], n_questions: int, rng: random.Random, grid: int) -> tuple[dict, dict]:
    """(questions.json, annotations.json) with exactly n_questions questions, 3 per image
    (question_id = image_id * 1000 + k, as in VQAv2). Questions carry an extra `image` key (file name)."""
    questions, annotations = [], []
    kinds = list(VQA_KINDS)
    for scene in scenes:
        asked = set()
        k = 0
        while k < 3 and len(questions) < n_questions:
            kind = rng.choices(kinds, weights=[VQA_KINDS[x] for x in kinds])[0]
            got = vqa_question(scene, rng, kind, grid)
            if got is None or got[0] in asked:
                continue
            q, qtype, atype, canonical, same, wrong = got
            asked.add(q)
            qid = scene.image_id * 1000 + k
            answers = _human_answers(canonical, same, wrong, rng)
            questions.append({"image_id": scene.image_id, "question": q, "question_id": qid, "image": scene.file})
            annotations.append({
                "question_id": qid, "image_id": scene.image_id, "question_type": qtype, "answer_type": atype,
                "multiple_choice_answer": canonical,
                "answers": [{"answer": a, "answer_confidence": "yes" if a == canonical or a in same else "maybe",
                             "answer_id": i + 1} for i, a in enumerate(answers)],
            })
            k += 1
    if len(questions) != n_questions:
        raise ValueError(f"VQAv2: {len(questions)} questions for {n_questions} wanted; too few images")
    questions_file = {**VQA_HEADER, "task_type": "Open-Ended", "questions": questions}
    annotations_file = {**VQA_HEADER, "task_type": "Open-Ended", "annotations": annotations}
    return questions_file, annotations_file


# --- Karpathy caption splits ----------------------------------------------------------------------------

def five_captions(scene: Scene, style: str, rng: random.Random) -> list[str]:
    """Five different captions (different wording where the generator allows)."""
    write = L.coco_caption if style == "coco" else L.flickr_caption
    captions: list[str] = []
    for _ in range(40):
        c = write(scene, rng)
        if c not in captions:
            captions.append(c)
        if len(captions) == 5:
            return captions
    while len(captions) < 5:
        captions.append(write(scene, rng))
    return captions


def karpathy_file(entries: list[tuple[Scene, str]], style: str, rng: random.Random) -> dict:
    """The Karpathy split JSON for [(scene, split)], split in train/val/test. COCO entries carry `cocoid`."""
    images, sentid = [], 0
    for imgid, (scene, split) in enumerate(entries):
        sentences = []
        for raw in five_captions(scene, style, rng):
            sentences.append({"tokens": L.tokens(raw), "raw": raw, "imgid": imgid, "sentid": sentid})
            sentid += 1
        entry = {"filename": scene.file, "imgid": imgid, "split": split,
                 "sentids": [s["sentid"] for s in sentences], "sentences": sentences}
        if style == "coco":
            entry["cocoid"] = scene.image_id
        images.append(entry)
    return {"images": images, "dataset": "coco" if style == "coco" else "flickr30k"}
