"""Image captioning on the Karpathy test split, scored with CIDEr: tasks `coco` and `flickr30k`.

Files: <data-root>/coco/dataset_coco.json and <data-root>/flickr30k/dataset_flickr30k.json, Karpathy's
split files (`images[].{filename, filepath?, cocoid?, imgid, split, sentences[].raw}`). Images: the
image root, or `<image root>/<filepath>` (real COCO: `val2014/`), or `<image root>/flickr30k-images/`.

The prompt follows the paper ("zero-shot ... with three text-only QA examples"): three demonstrations
(user: the caption instruction, assistant: a training-split caption, no image), then the test image
with the same instruction. Demonstrations are drawn per test image, in file order, from a
`random.Random(seed)`: three distinct training images, one of each one's captions. Both protocols use
this prompt; `paper` decodes as the authors' harness does (sampling, 10 new tokens) and drops `"`.
Output: <task>/results.json `[{"image_id", "caption"}]`, image_id = cocoid (COCO) or the file name
(Flickr30k). With --limit, <task>/references.json keeps the references of the images asked, so the
score covers exactly them.

    lntune eval --model DIR --tasks coco,flickr30k --data-root DIR --out DIR
"""

from __future__ import annotations

import random
from pathlib import Path

from lntune.errors import LntuneError
from lntune.eval.tasks.base import Sample, Task, read_json, text_demo, user_turn, write_json

INSTRUCTION = "Please provide a description of the picture."
SHOTS = 3


def caption_image_id(image: dict):
    """The id a caption result carries: COCO's cocoid when present, else the file name (Flickr30k)."""
    return image["cocoid"] if "cocoid" in image else image["filename"]


class Captioning(Task):
    official_max_new_tokens = 48
    karpathy_file = ""
    extra_image_folders: tuple[str, ...] = ()

    @property
    def layout(self) -> str:
        return f"{self.name}/{self.karpathy_file} (Karpathy split format)"

    @property
    def references_path(self) -> Path:
        return self.data_root / self.name / self.karpathy_file

    def image_folders(self) -> list[Path]:
        return [self.image_root] + [self.image_root / f for f in self.extra_image_folders]

    def load(self) -> dict:
        doc = read_json(self.require(self.references_path, "Karpathy split file"), "Karpathy split")
        if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
            raise LntuneError(f"{self.references_path}: expected a JSON object with an 'images' list")
        return doc

    def samples(self, limit: int | None = None) -> list[Sample]:
        images = self.load()["images"]
        for number, image in enumerate(images, 1):
            missing = [k for k in ("filename", "split", "sentences") if k not in image]
            if missing:
                raise LntuneError(f"{self.references_path}: image {number} lacks {', '.join(missing)}")
        test = [image for image in images if image["split"] == "test"]
        train = [image for image in images if image["split"] == "train" and image["sentences"]]
        if not test:
            raise LntuneError(f"{self.references_path}: no image with split 'test'")
        if len(train) < SHOTS:
            raise LntuneError(f"{self.references_path}: the demonstrations need {SHOTS} images with split 'train', "
                              f"found {len(train)}")
        rng = random.Random(self.seed)
        samples = []
        for image in test[:limit] if limit is not None else test:
            demos = [rng.choice(demo["sentences"])["raw"].strip() for demo in rng.sample(train, SHOTS)]
            messages = [m for caption in demos for m in text_demo(INSTRUCTION, caption)] + [user_turn(INSTRUCTION)]
            image_id = caption_image_id(image)
            folders = self.image_folders()
            if image.get("filepath"):
                folders = [self.image_root / image["filepath"]] + folders
            samples.append(Sample(id=str(image_id), image=self.find_image([image["filename"]], str(image_id), folders),
                                  messages=messages, meta={"image_id": image_id, "demos": demos}))
        return samples

    def parse(self, text: str) -> str:
        text = " ".join(text.split())
        return text.replace('"', "") if self.protocol == "paper" else text

    def write_outputs(self, samples, answers, out_dir) -> list[Path]:
        results = [{"image_id": s.meta["image_id"], "caption": self.parse(answers[s.id]["text"])} for s in samples]
        return [write_json(self.task_dir(out_dir) / "results.json", results)]

    def score(self, samples, answers, out_dir) -> dict:
        from lntune.eval.metrics.caption import caption_units

        folder = Path(out_dir) / self.name
        results = read_json(folder / "results.json", "caption results")
        references = self.references_path
        asked = {s.meta["image_id"] for s in samples}
        doc = self.load()
        if len(asked) < sum(1 for image in doc["images"] if image["split"] == "test"):
            kept = [image for image in doc["images"] if image["split"] != "test" or caption_image_id(image) in asked]
            references = write_json(folder / "references.json", {**doc, "images": kept})
        units, tokenizer = caption_units(references, results, split="test")
        return self.scored("caption", units, out_dir, split="test", tokenizer=tokenizer)


class Coco(Captioning):
    name = "coco"
    karpathy_file = "dataset_coco.json"
    extra_image_folders = ("val2014",)


class Flickr30k(Captioning):
    name = "flickr30k"
    karpathy_file = "dataset_flickr30k.json"
    extra_image_folders = ("flickr30k-images", "flickr30k_images")
