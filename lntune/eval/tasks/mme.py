"""MME: 14 yes/no subtasks, two questions per image; perception and cognition scores.

Files: <data-root>/mme/<subtask>/ as in MME_Benchmark_release_version, in either of its two layouts:
flat (`<name>.jpg|png` next to `<name>.txt`) or split (`images/<name>.jpg|png` and
`questions_answers_YN/<name>.txt`). Each txt holds lines `question<TAB>answer` (Yes/No). Whichever of the
14 subtasks exist are run; `--protocol paper` leaves out landmark and artwork as the authors' harness
does. The prompt is the question as written (it ends "Please answer yes or no."), zero-shot.
Output: mme/<subtask>.txt in the official layout `image<TAB>question<TAB>gt<TAB>response`, scored by
lntune.eval.metrics.mme.

    lntune eval --model DIR --tasks mme --data-root DIR --out DIR
"""

from __future__ import annotations

from pathlib import Path

from lntune.errors import LntuneError
from lntune.eval.tasks.base import Sample, Task, user_turn

PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR")
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
SUBTASKS = PERCEPTION + COGNITION
PAPER_EXCLUDED = ("landmark", "artwork")
IMAGE_SUFFIXES = (".jpg", ".png", ".jpeg", ".JPG", ".PNG")


class Mme(Task):
    name = "mme"
    official_max_new_tokens = 16
    stops_when_settled = True
    layout = "mme/<subtask>/{<name>.txt, <name>.jpg|png} or mme/<subtask>/{questions_answers_YN,images}/"

    def subtasks(self) -> list[str]:
        root = self.require(self.data_root / "mme", "MME folder")
        wanted = [s for s in SUBTASKS if not (self.protocol == "paper" and s in PAPER_EXCLUDED)]
        present = [s for s in wanted if (root / s).is_dir()]
        if not present:
            raise LntuneError(f"mme: no subtask folder in {root} (expected some of: {', '.join(wanted)}; "
                              f"layout {self.layout})")
        return present

    def samples(self, limit: int | None = None) -> list[Sample]:
        """Questions of every present subtask, images in name order; `limit` applies per subtask and is
        rounded down to whole images (two questions each), as the MME score needs both answers."""
        samples = []
        for subtask in self.subtasks():
            subtask_samples = self._subtask_samples(self.data_root / "mme" / subtask, subtask)
            if limit is not None:
                subtask_samples = subtask_samples[: max(2, limit - limit % 2)]
            samples.extend(subtask_samples)
        return samples

    def _subtask_samples(self, folder: Path, subtask: str) -> list[Sample]:
        split = (folder / "questions_answers_YN").is_dir()
        text_dir = folder / "questions_answers_YN" if split else folder
        image_dir = folder / "images" if split else folder
        samples = []
        for txt in sorted(text_dir.glob("*.txt")):
            image = next((image_dir / (txt.stem + s) for s in IMAGE_SUFFIXES if (image_dir / (txt.stem + s)).is_file()),
                         None)
            if image is None:
                raise LntuneError(f"mme: no image for {txt} (looked for {txt.stem}.jpg/.png in {image_dir})")
            for number, line in enumerate(txt.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                parts = line.split("\t")
                if len(parts) < 2 or parts[1].strip().lower() not in ("yes", "no"):
                    raise LntuneError(f"{txt}:{number}: expected 'question<TAB>Yes|No', got {line!r}")
                question, answer = parts[0].strip(), parts[1].strip()
                samples.append(Sample(
                    id=f"{subtask}/{image.name}/{number}", image=image, messages=[user_turn(question)],
                    meta={"subtask": subtask, "image_name": image.name, "question": question, "gt": answer},
                ))
        if not samples:
            raise LntuneError(f"mme: {folder} holds no question files (<name>.txt with 'question<TAB>Yes|No' lines)")
        return samples

    def settled(self, text: str) -> bool:
        from lntune.eval.metrics.mme import mme_answer_settled

        return mme_answer_settled(text)

    def write_outputs(self, samples, answers, out_dir) -> list[Path]:
        from lntune.eval.metrics.mme import mme_result_line

        folder = self.task_dir(out_dir)
        lines: dict[str, list[str]] = {}
        for sample in samples:
            m = sample.meta
            response = self.parse(answers[sample.id]["text"])
            lines.setdefault(m["subtask"], []).append(mme_result_line(m["image_name"], m["question"], m["gt"], response))
        paths = []
        for subtask, rows in lines.items():
            path = folder / f"{subtask}.txt"
            path.write_text("".join(rows), encoding="utf-8")
            paths.append(path)
        return paths

    def score(self, samples, answers, out_dir) -> dict:
        from lntune.eval.metrics.mme import mme_units

        exclude = PAPER_EXCLUDED if self.protocol == "paper" else ()
        return self.scored("mme", mme_units(Path(out_dir) / self.name, exclude=exclude), out_dir)
