"""VQAv2 open-ended questions, scored with the official VQA accuracy.

Files: <data-root>/vqav2/questions.json and annotations.json in the official format (for real data:
v2_OpenEnded_mscoco_val2014_questions.json and v2_mscoco_val2014_annotations.json, renamed or
symlinked). Images are found by `image_id` in the image root or its `val2014/` folder, as
COCO_val2014_<12-digit id>.jpg, <12-digit id>.jpg|png or <id>.jpg|png (a question's own `image` key,
when present, wins).

Protocols:
  official  every question, zero-shot, "<question>\\nAnswer the question using a single word or phrase."
            (LLaVA's prompt), greedy; the answer goes through the official answer normalisation
            (lntune.eval.metrics.normalize_vqa_answer) as in LLaVA's submission script.
  paper     the authors' harness: numpy seed 42 draws 2,048 + 5,000 distinct questions, the first 2,048
            are the demonstration pool and the other 5,000 are evaluated; each question gets 3 text-only
            demonstrations (question, first human answer) drawn with Python's random seeded 42, the raw
            question as prompt, and the answer cut at "Question"/"Answer"/"Short" and at the first ", ".
            Smaller sets keep the same recipe with a pool of half the questions.
Output: vqav2/results.json `[{"question_id", "answer"}]` (the official results format).

    lntune eval --model DIR --tasks vqav2 --data-root DIR --out DIR [--protocol paper]
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from lntune.errors import LntuneError
from lntune.eval.tasks.base import Sample, Task, read_json, text_demo, user_turn, write_json

OFFICIAL_SUFFIX = "\nAnswer the question using a single word or phrase."
PAPER_EVAL_SIZE = 5000
PAPER_POOL_SIZE = 2048
PAPER_SHOTS = 3


class Vqav2(Task):
    name = "vqav2"
    official_max_new_tokens = 16
    layout = "vqav2/questions.json + vqav2/annotations.json (official VQAv2 format)"

    def image_folders(self) -> list[Path]:
        return [self.image_root, self.image_root / "val2014"]

    def load(self) -> tuple[dict, dict]:
        """(questions document, annotations document) as read from disk."""
        folder = self.data_root / "vqav2"
        questions = read_json(self.require(folder / "questions.json", "VQAv2 questions file"), "VQAv2 questions")
        annotations = read_json(self.require(folder / "annotations.json", "VQAv2 annotations file"),
                                "VQAv2 annotations")
        for doc, key, path in ((questions, "questions", "questions.json"), (annotations, "annotations", "annotations.json")):
            if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
                raise LntuneError(f"{folder / path}: expected a JSON object with a {key!r} list")
        return questions, annotations

    def samples(self, limit: int | None = None) -> list[Sample]:
        questions, annotations = self.load()
        rows = questions["questions"]
        for number, row in enumerate(rows, 1):
            if not isinstance(row, dict) or not {"question_id", "question", "image_id"} <= row.keys():
                raise LntuneError(f"{self.data_root / 'vqav2' / 'questions.json'}: question {number} lacks "
                                  "question_id, question or image_id")
        if self.protocol == "paper":
            answers = {a["question_id"]: a for a in annotations["annotations"]}
            rows, demos = self._paper_subset(rows, answers)
        else:
            demos = [[] for _ in rows]
        if limit is not None:
            rows, demos = rows[:limit], demos[:limit]
        samples, found = [], {}
        for row, shots in zip(rows, demos):
            sample_id = str(row["question_id"])
            question = row["question"].strip()
            if self.protocol == "paper":
                messages = [m for q, a in shots for m in text_demo(q, a)] + [user_turn(question)]
            else:
                messages = [user_turn(question + OFFICIAL_SUFFIX)]
            key = (row["image_id"], row.get("image"))
            if key not in found:  # about five questions per image: look each image up once
                found[key] = self.find_image(self._image_names(row), sample_id)
            samples.append(Sample(id=sample_id, image=found[key], messages=messages,
                                  meta={"question_id": row["question_id"]}))
        return samples

    @staticmethod
    def _image_names(row: dict) -> list[str]:
        image_id = row["image_id"]
        names = [row.get("image", "")]
        if isinstance(image_id, int):
            names += [f"COCO_val2014_{image_id:012d}.jpg", f"{image_id:012d}.jpg", f"{image_id:012d}.png"]
        names += [f"{image_id}.png", f"{image_id}.jpg", str(image_id)]
        return names

    def _paper_subset(self, rows: list[dict], answers: dict) -> tuple[list[dict], list[list[tuple[str, str]]]]:
        """The authors' draw: np.random.seed(seed); choice(n, pool + eval, replace=False); pool first."""
        import numpy as np

        n = len(rows)
        pool_size = PAPER_POOL_SIZE if n >= PAPER_POOL_SIZE + PAPER_EVAL_SIZE else n // 2
        eval_size = min(PAPER_EVAL_SIZE, n - pool_size)
        if pool_size < PAPER_SHOTS or eval_size < 1:
            raise LntuneError(f"vqav2: --protocol paper needs at least {2 * PAPER_SHOTS} questions, found {n}")
        # RandomState(seed).choice draws exactly what np.random.seed(seed); np.random.choice(...) does.
        order = np.random.RandomState(self.seed).choice(n, pool_size + eval_size, replace=False)
        pool = []
        for i in order[:pool_size]:
            qid = rows[i]["question_id"]
            if qid not in answers or not answers[qid].get("answers"):
                raise LntuneError(f"vqav2: annotations.json has no answers for question_id {qid}")
            pool.append((rows[i]["question"].strip(), answers[qid]["answers"][0]["answer"].strip()))
        rng = random.Random(self.seed)
        evaluated = [rows[i] for i in order[pool_size:]]
        return evaluated, [rng.sample(pool, PAPER_SHOTS) for _ in evaluated]

    def parse(self, text: str) -> str:
        if self.protocol == "paper":
            text = re.split("Question|Answer|Short", text, maxsplit=1)[0]
            return re.split(", ", text, maxsplit=1)[0].strip()
        # The official normalisation, as LLaVA's submission script applies before writing results: the
        # scorer itself normalises only questions whose ten human answers differ ("Yes" vs all "yes").
        from lntune.eval.metrics.vqav2 import normalize_vqa_answer

        return normalize_vqa_answer(text)

    def write_outputs(self, samples, answers, out_dir) -> list[Path]:
        results = [{"question_id": s.meta["question_id"], "answer": self.parse(answers[s.id]["text"])} for s in samples]
        return [write_json(self.task_dir(out_dir) / "results.json", results)]

    def score(self, samples, answers, out_dir) -> dict:
        from lntune.eval.metrics.vqav2 import vqav2_units

        questions, annotations = self.load()
        asked = {s.meta["question_id"] for s in samples}
        # Score exactly the questions asked (a --limit prefix or the paper's subset), as the official
        # scorer requires one prediction per question of the files it is given.
        questions = {**questions, "questions": [q for q in questions["questions"] if q["question_id"] in asked]}
        annotations = {**annotations,
                       "annotations": [a for a in annotations["annotations"] if a["question_id"] in asked]}
        results = read_json(Path(out_dir) / self.name / "results.json", "VQAv2 results")
        return self.scored("vqav2", vqav2_units(questions, annotations, results), out_dir)
