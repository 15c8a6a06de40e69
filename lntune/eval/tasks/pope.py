"""POPE (object hallucination): yes/no questions in three splits, random / popular / adversarial.

Files: <data-root>/pope/coco_pope_{random,popular,adversarial}.json, JSON lines of
`{"question_id", "image", "text", "label"}` as RUCAIBox/POPE ships them; `image` is a file name looked up
in the image root (or its `val2014/` folder, for real COCO). The prompt is the question alone, zero-shot,
in both protocols. Output: pope/answers.jsonl with `question_id, category (= split), text, prompt` in
label-file order per split; metrics per split from lntune.eval.metrics.pope (with --limit, against
pope/labels/, the label files cut to the questions asked).

    lntune eval --model DIR --tasks pope --data-root DIR --out DIR
"""

from __future__ import annotations

import json
from pathlib import Path

from lntune.errors import LntuneError
from lntune.eval.tasks.base import Sample, Task, read_json_lines, user_turn

SPLITS = ("random", "popular", "adversarial")


class Pope(Task):
    name = "pope"
    official_max_new_tokens = 16
    stops_when_settled = True
    layout = "pope/coco_pope_{random,popular,adversarial}.json"

    def image_folders(self) -> list[Path]:
        return [self.image_root, self.image_root / "val2014"]

    def label_file(self, split: str) -> Path:
        return self.data_root / "pope" / f"coco_pope_{split}.json"

    def samples(self, limit: int | None = None) -> list[Sample]:
        """All three splits in order; `limit` applies to each split."""
        samples = []
        folders = self.image_folders()
        found: dict[str, Path] = {}
        for split in SPLITS:
            path = self.require(self.label_file(split), f"POPE {split} label file")
            rows = read_json_lines(path, "POPE labels")
            for number, row in enumerate(rows[:limit] if limit is not None else rows, 1):
                missing = [k for k in ("question_id", "image", "text", "label") if k not in row]
                if missing:
                    raise LntuneError(f"{path}: record {number} lacks {', '.join(missing)}")
                sample_id = f"{split}/{row['question_id']}"
                if row["image"] not in found:
                    found[row["image"]] = self.find_image([row["image"]], sample_id, folders)
                samples.append(Sample(
                    id=sample_id, image=found[row["image"]], messages=[user_turn(row["text"].strip())],
                    meta={"question_id": row["question_id"], "category": split, "label": row["label"]},
                ))
        return samples

    def settled(self, text: str) -> bool:
        from lntune.eval.metrics.pope import pope_answer_settled

        return pope_answer_settled(text)

    def write_outputs(self, samples, answers, out_dir) -> list[Path]:
        path = self.task_dir(out_dir) / "answers.jsonl"
        with open(path, "w", encoding="utf-8") as f:
            for sample in samples:
                record = answers[sample.id]
                f.write(json.dumps({"question_id": sample.meta["question_id"], "category": sample.meta["category"],
                                    "text": self.parse(record["text"]), "prompt": record["prompt"]},
                                   ensure_ascii=False) + "\n")
        return [path]

    def score(self, samples, answers, out_dir) -> dict:
        from lntune.eval.metrics.pope import pope_units

        folder = Path(out_dir) / self.name
        labels_dir = self.data_root / "pope"
        asked = {(s.meta["category"], s.meta["question_id"]) for s in samples}
        split_rows = {split: read_json_lines(self.label_file(split), "POPE labels") for split in SPLITS}
        if len(asked) < sum(len(rows) for rows in split_rows.values()):
            # A --limit run: score against label files holding exactly the questions asked.
            labels_dir = folder / "labels"
            labels_dir.mkdir(exist_ok=True)
            for split, rows in split_rows.items():
                kept = [row for row in rows if (split, row["question_id"]) in asked]
                (labels_dir / f"coco_pope_{split}.json").write_text(
                    "".join(json.dumps(row) + "\n" for row in kept), encoding="utf-8")
        return self.scored("pope", pope_units(labels_dir, folder / "answers.jsonl"), out_dir)
