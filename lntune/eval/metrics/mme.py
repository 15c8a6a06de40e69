"""MME scores, with the rules of the official eval_tool/calculation.py.

    lntune score mme --results-dir DIR [--exclude landmark,artwork] [--json]

or from Python: `score_mme(results_dir, exclude=())`. DIR holds one `<subtask>.txt` per subtask, each
line `image<TAB>question<TAB>gt<TAB>response`, two consecutive lines per image (the official layout).

Rules, as calculation.py applies them: lines are read as Python text lines (the response keeps its
trailing newline); the response is lower-cased; exactly "yes"/"no" is that answer, else "yes" inside
the first 4 characters is yes, else "no" inside them is no, else the answer is "other" and counts as
wrong (`parse_mme_answer`). Subtask score = 100 x accuracy + 100 x accuracy+, accuracy+ being the share
of images with both questions right. Perception = the sum over the 10 perception subtasks (max 2000),
cognition over the 4 cognition subtasks (max 800); subtasks without a file are left out with a warning.
An image whose pair appears twice, a pair split across non-consecutive lines, or a `.txt` file named after
no subtask is an error naming the line or file (the official script would count or skip them silently).
`--exclude landmark,artwork` gives the authors' own 8-subtask perception (max 1600).
"""

import warnings
from pathlib import Path

from lntune.errors import LntuneError

PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark",
              "artwork", "OCR")
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
_LAYOUT = ("one <subtask>.txt per MME subtask (e.g. existence.txt, OCR.txt), lines "
           "'image<TAB>question<TAB>gt<TAB>response', two per image")


def parse_mme_answer(text) -> str:
    """'yes', 'no' or 'other' for one response, by the official rule (case-insensitive)."""
    text = ("" if text is None else str(text)).lower()
    if text in ("yes", "no"):
        return text
    head = text[:4]
    if "yes" in head:
        return "yes"
    if "no" in head:
        return "no"
    return "other"


def mme_result_line(image: str, question: str, gt: str, response: str) -> str:
    """One line of an official results file; tabs and line breaks in the fields become spaces.

    A tab or newline inside a response would break the official file layout; as a space it parses
    the same (the first four characters of "yes\nIt is." and "yes It is." agree).
    """
    return "\t".join(one_line(field) for field in (image, question, gt, response)) + "\n"


def one_line(field) -> str:
    """A field of a results line: tabs and line breaks become spaces."""
    return " ".join(str(field).replace("\t", " ").splitlines())


def mme_answer_settled(text: str) -> bool:
    """Whether `parse_mme_answer` gives the same answer for the response written from `text` (stripped, as
    lntune stores answers) and for the one written from every text that continues it.

    The parser reads the lower-cased response: exactly "yes"/"no", else "yes" or "no" within its first 4
    characters. Once the written response has 4 characters they are fixed and it cannot be exactly
    "yes"/"no" any more; a shorter one holding "yes" or "no" keeps it within the first 4, and "yes"
    cannot appear beside a "no" there (the two would overlap).
    """
    response = one_line(text).lower()
    return len(response) >= 4 or "yes" in response or "no" in response


def score_mme_file(path) -> dict:
    """{"score", "acc", "acc_plus", "other"} of one subtask file (acc/acc_plus as fractions)."""
    return summarize_mme_subtask(mme_file_units(path))


def summarize_mme_subtask(units: list[dict]) -> dict:
    """{"score", "acc", "acc_plus", "other"} of one subtask's `mme_file_units` records."""
    images = len(units)
    acc = sum(unit["right"] for unit in units) / (2 * images)
    acc_plus = sum(unit["right"] == 2 for unit in units) / images
    # Summed in the official order (acc first), so the float agrees to the last bit.
    return {"score": acc * 100 + acc_plus * 100, "acc": acc, "acc_plus": acc_plus,
            "other": sum(unit["other"] for unit in units)}


def mme_file_units(path, subtask: str | None = None) -> list[dict]:
    """Per image (pair of lines) of one subtask file: {"id": "<subtask>/<image>", "subtask", "right": 0-2
    (questions answered right), "other": 0-2 (answers neither yes nor no)}."""
    path = Path(path)
    subtask = subtask or path.stem
    if not path.is_file():
        raise LntuneError(f"{path}: file not found (expected {_LAYOUT})")
    # Text mode with universal newlines and readlines(), as the official script reads the file.
    with open(path, encoding="utf-8") as handle:
        try:
            lines = handle.readlines()
        except UnicodeDecodeError as err:
            raise LntuneError(f"{path}: not UTF-8 text (byte {err.start})") from None
    if not lines:
        raise LntuneError(f"{path}: empty (expected {_LAYOUT})")
    if len(lines) % 2:
        raise LntuneError(f"{path}: {len(lines)} lines, an odd number; expected two lines (questions) per image")
    units, first_line_of = [], {}
    for first in range(0, len(lines), 2):
        right_here = other = 0
        image, partner = lines[first].split("\t")[0], lines[first + 1].split("\t")[0]
        if partner != image:
            raise LntuneError(f"{path}:{first + 2}: image {partner!r} where line {first + 1}'s {image!r} was expected; "
                              "each image's two questions are on consecutive lines")
        if image in first_line_of:
            raise LntuneError(f"{path}:{first + 1}: image {image!r} again (first on line {first_line_of[image]}); "
                              "each image's pair of questions is counted once")
        first_line_of[image] = first + 1
        for lineno in (first + 1, first + 2):
            fields = lines[lineno - 1].split("\t")
            if len(fields) != 4:
                raise LntuneError(f"{path}:{lineno}: {len(fields)} tab-separated fields, expected 4 "
                                  "(image, question, gt, response; a response must not contain a tab)")
            gt = fields[2].lower()
            if gt not in ("yes", "no"):
                raise LntuneError(f"{path}:{lineno}: ground truth {fields[2]!r} is not Yes or No")
            answer = parse_mme_answer(fields[3])
            other += answer == "other"
            right_here += answer == gt
        units.append({"id": f"{subtask}/{image}", "subtask": subtask, "right": right_here, "other": other})
    return units


def score_mme(results_dir, exclude=(), bootstrap: int = 0, seed: int = 0) -> dict:
    """Official MME perception and cognition totals and per-subtask scores for a results folder.

    exclude: subtask names to leave out (e.g. ("landmark", "artwork") for the paper's protocol).
    Returns {"perception": float, "cognition": float, "subtasks": {name: score}}, plus "ci95" (bootstrap
    over each subtask's images, both questions of an image kept together; `bootstrap` resamples seeded
    by `seed`) when bootstrap > 0.
    """
    from lntune.eval.intervals import score_units

    return score_units("mme", mme_units(results_dir, exclude), bootstrap, seed)


def mme_units(results_dir, exclude=()) -> list[dict]:
    """The `mme_file_units` records of every subtask file present (less `exclude`), in the official order."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise LntuneError(f"{results_dir}: not a folder (expected {_LAYOUT})")
    if isinstance(exclude, str):
        exclude = [name for name in exclude.split(",") if name]
    unknown = [name for name in exclude if name not in PERCEPTION + COGNITION]
    if unknown:
        raise LntuneError(f"unknown MME subtask(s) to exclude: {', '.join(unknown)} "
                          f"(known: {', '.join(PERCEPTION + COGNITION)})")
    strays = sorted(p.name for p in results_dir.glob("*.txt") if p.stem not in PERCEPTION + COGNITION)
    if strays:
        raise LntuneError(f"{results_dir / strays[0]}: not an MME subtask (known: "
                          f"{', '.join(PERCEPTION + COGNITION)}); rename or remove it")
    wanted = [name for name in PERCEPTION + COGNITION if name not in exclude]
    present = [name for name in wanted if (results_dir / f"{name}.txt").is_file()]
    if not present:
        raise LntuneError(f"{results_dir}: no MME result files found (expected {_LAYOUT})")
    missing = [name for name in wanted if name not in present]
    if missing:
        warnings.warn(f"{results_dir}: no results for MME subtask(s) {', '.join(missing)}; "
                      "their scores are left out of the totals", stacklevel=2)
    return [unit for name in present for unit in mme_file_units(results_dir / f"{name}.txt", name)]


def summarize_mme(units: list[dict]) -> dict:
    """The official MME result dict from `mme_units` records."""
    by_subtask = {}
    for unit in units:
        by_subtask.setdefault(unit["subtask"], []).append(unit)
    present = [name for name in PERCEPTION + COGNITION if name in by_subtask]
    subtasks = {name: summarize_mme_subtask(by_subtask[name])["score"] for name in present}
    perception = cognition = 0
    for name in present:
        if name in PERCEPTION:
            perception += subtasks[name]
        else:
            cognition += subtasks[name]
    return {"perception": float(perception), "cognition": float(cognition), "subtasks": subtasks}
