"""VQAv2 accuracy, with the rules of the official evaluation (GT-Vision-Lab/VQA, vqaEval.py).

    lntune score vqav2 --questions Q.json --annotations A.json --predictions P.json [--json]

or from Python: `score_vqav2(questions, annotations, predictions)`. Predictions are the official
results format, a JSON list of {"question_id", "answer"}, one per annotated question.

The rules, as the official code applies them:
- newlines and tabs become spaces and both ends are stripped, for the 10 human answers and the prediction;
- only when the 10 human answers are not all identical are they and the prediction normalised
  (`normalize_vqa_answer`: punctuation, number words to digits, articles dropped, contractions);
  otherwise the comparison is exact (so "Yes" does not match ten "yes" answers);
- per question: the mean, over the 10 ways of leaving one human answer out, of
  min(1, matches among the other 9 / 3);
- overall and per answer/question type: 100 x the mean, rounded to 2 decimals.
"""

import re
from pathlib import Path

from lntune.errors import LntuneError
from lntune.jsonio import first_few, item_where, load_json, load_records, required

_PUNCTUATION = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-",
                ">", "<", "@", "`", ",", "?", "!"]
# The official period pattern also has a "(?!<=\d)" meant as a look-behind; written as a look-ahead
# it never fires, so only "a period not followed by a digit" remains.
_PERIOD = re.compile(r"\.(?!\d)")
# The official code passes re.UNICODE (= 32) where re.sub expects `count`: at most 32 periods go.
_MAX_PERIODS = 32
_COMMA_IN_NUMBER = re.compile(r"\d,\d")
_NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
                 "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = {"a", "an", "the"}
# The official contraction table, as "written-form canonical-form" pairs. Entries whose key has a
# capital letter are left out: words are lower-cased before the lookup, so they never apply.
_CONTRACTIONS = dict(pair.split() for pair in """
    aint ain't|arent aren't|cant can't|couldve could've|couldnt couldn't|couldn'tve couldn't've
    couldnt've couldn't've|didnt didn't|doesnt doesn't|dont don't|hadnt hadn't|hadnt've hadn't've
    hadn'tve hadn't've|hasnt hasn't|havent haven't|hed he'd|hed've he'd've|he'dve he'd've|hes he's
    howd how'd|howll how'll|hows how's|isnt isn't|itd it'd|itd've it'd've|it'dve it'd've|itll it'll
    maam ma'am|mightnt mightn't|mightnt've mightn't've|mightn'tve mightn't've|mightve might've
    mustnt mustn't|mustve must've|neednt needn't|notve not've|oclock o'clock|oughtnt oughtn't
    ow's'at 'ow's'at|'ows'at 'ow's'at|'ow'sat 'ow's'at|shant shan't|shed've she'd've|she'dve she'd've
    shouldve should've|shouldnt shouldn't|shouldnt've shouldn't've|shouldn'tve shouldn't've
    somebody'd somebodyd|somebodyd've somebody'd've|somebody'dve somebody'd've|somebodyll somebody'll
    somebodys somebody's|someoned someone'd|someoned've someone'd've|someone'dve someone'd've
    someonell someone'll|someones someone's|somethingd something'd|somethingd've something'd've
    something'dve something'd've|somethingll something'll|thats that's|thered there'd
    thered've there'd've|there'dve there'd've|therere there're|theres there's|theyd they'd
    theyd've they'd've|they'dve they'd've|theyll they'll|theyre they're|theyve they've|twas 'twas
    wasnt wasn't|wed've we'd've|we'dve we'd've|weve we've|werent weren't|whatll what'll|whatre what're
    whats what's|whatve what've|whens when's|whered where'd|wheres where's|whereve where've|whod who'd
    whod've who'd've|who'dve who'd've|wholl who'll|whos who's|whove who've|whyll why'll|whyre why're
    whys why's|wont won't|wouldve would've|wouldnt wouldn't|wouldnt've wouldn't've
    wouldn'tve wouldn't've|yall y'all|yall'll y'all'll|y'allll y'all'll|yall'd've y'all'd've
    y'alld've y'all'd've|y'all'dve y'all'd've|youd you'd|youd've you'd've|you'dve you'd've
    youll you'll|youre you're|youve you've""".replace("\n", "|").split("|") if pair.strip())


def clean_vqa_answer(text: str) -> str:
    """What the official code always does to an answer: newlines and tabs to spaces, then strip."""
    return text.replace("\n", " ").replace("\t", " ").strip()


def normalize_punctuation(text: str) -> str:
    """Drop or space out punctuation as vqaEval.py's processPunctuation does."""
    # A mark is deleted when it touches a space anywhere in the text, or when the text holds a
    # comma between digits ("1,000"); otherwise it becomes a space. The tests use the input text.
    drop_all = _COMMA_IN_NUMBER.search(text) is not None
    out = text
    for mark in _PUNCTUATION:
        touches_space = (mark + " ") in text or (" " + mark) in text
        out = out.replace(mark, "" if (drop_all or touches_space) else " ")
    return _PERIOD.sub("", out, count=_MAX_PERIODS)


def normalize_words(text: str) -> str:
    """Lower-case, number words to digits, drop a/an/the, canonical contractions (processDigitArticle)."""
    words = [_NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in _ARTICLES]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words)


def normalize_vqa_answer(text: str) -> str:
    """The full official normalisation of one answer (clean, punctuation, digits/articles/contractions)."""
    return normalize_words(normalize_punctuation(clean_vqa_answer(text)))


def vqa_accuracy(prediction: str, answers: list) -> float:
    """Accuracy (0..1) of one prediction against the human answers of one question.

    `answers` are strings, or the official answer dicts ({"answer", "answer_id", ...}); with dicts,
    "leaving one out" leaves out every dict equal to it, as the official code does (real annotations
    have distinct answer_ids, so this only matters for hand-made files without them).
    """
    # Plain strings are told apart by position, like dicts with distinct answer_ids.
    records = [dict(a) if isinstance(a, dict) else {"answer": a, "position": i} for i, a in enumerate(answers)]
    if not records:
        raise LntuneError("vqa_accuracy: a question has no human answers")
    for rec in records:
        rec["answer"] = clean_vqa_answer(rec["answer"])
    prediction = clean_vqa_answer(prediction)
    if len({rec["answer"] for rec in records}) > 1:
        for rec in records:
            rec["answer"] = normalize_words(normalize_punctuation(rec["answer"]))
        prediction = normalize_words(normalize_punctuation(prediction))
    matches = sum(rec["answer"] == prediction for rec in records)
    total = 0.0
    for rec in records:
        if rec["answer"] == prediction:
            left_out = sum(other == rec for other in records)
            total += min(1, (matches - left_out) / 3)
        else:
            total += min(1, matches / 3)
    return total / len(records)


def score_vqav2(questions, annotations, predictions, bootstrap: int = 0, seed: int = 0) -> dict:
    """Official VQAv2 accuracy (percent, 2 decimals) of `predictions` on the annotated questions.

    questions: path to the official questions JSON, its loaded dict, a list of question dicts, or None
        (used to check the files belong together and for the Multiple-Choice rule).
    annotations: path to the official annotations JSON, its loaded dict, or a list of annotation dicts.
    predictions: path to a results JSON, or a list of {"question_id", "answer"}.
    Returns {"accuracy", "per_answer_type": {type: acc}, "per_question_type": {type: acc}, "questions": n},
    plus "ci95" (bootstrap over questions, `bootstrap` resamples seeded by `seed`) when bootstrap > 0.
    """
    from lntune.eval.intervals import score_units

    return score_units("vqav2", vqav2_units(questions, annotations, predictions), bootstrap, seed)


def vqav2_units(questions, annotations, predictions) -> list[dict]:
    """Per annotated question: {"id", "accuracy" (0..1), "answer_type", "question_type"}, checked as
    `score_vqav2` describes; the records `summarize_vqav2` and the bootstrap work from."""
    ann_src = annotations if isinstance(annotations, (str, Path)) else "annotations"
    pred_src = predictions if isinstance(predictions, (str, Path)) else "predictions"
    anns = _as_list(annotations, "annotations", "VQAv2 annotations ({'annotations': [...]})")
    ques_data = None if questions is None else _load(questions, "VQAv2 questions ({'questions': [...]})")
    what = "VQAv2 results (a JSON list of {question_id, answer})"
    preds = load_records(predictions, what) if isinstance(predictions, (str, Path)) else _as_list(predictions, None, what)
    if not isinstance(preds, list):
        raise LntuneError(f"{pred_src}: expected {what}")

    by_question = {}
    for i, ann in enumerate(anns):
        for key in ("question_id", "answers", "question_type", "answer_type"):
            if not isinstance(ann, dict) or key not in ann:
                raise LntuneError(f"{ann_src}: annotation {i} has no '{key}'")
        for j, ans in enumerate(ann["answers"]):
            if not isinstance(ans, dict) or not isinstance(ans.get("answer"), str):
                raise LntuneError(f"{ann_src}: question {ann['question_id']}: answer {j} has no text 'answer'")
        by_question[ann["question_id"]] = ann
    if not by_question:
        raise LntuneError(f"{ann_src}: no annotations")

    multiple_choice = {}
    if ques_data is not None:
        multiple_choice = _check_questions(ques_data, by_question, questions)

    answer_of = {}
    for i, pred in enumerate(preds):
        if not isinstance(pred, dict) or "question_id" not in pred:
            raise LntuneError(f"{pred_src}: item {i} has no 'question_id'")
        at = item_where(pred, i, pred_src)
        if pred["question_id"] in answer_of:
            raise LntuneError(f"{at}: second prediction for question {pred['question_id']!r}")
        answer_of[pred["question_id"]] = str(required(pred, "answer", at))  # "" is an answer; missing/null is not
    _check_ids(set(answer_of), by_question, pred_src)
    for qid, choices in multiple_choice.items():
        if answer_of[qid] not in choices:
            raise LntuneError(f"{pred_src}: question {qid}: answer {answer_of[qid]!r} is not one of its multiple choices")

    from tqdm import tqdm

    return [{"id": qid, "accuracy": vqa_accuracy(answer_of[qid], ann["answers"]),
             "answer_type": ann["answer_type"], "question_type": ann["question_type"]}
            for qid, ann in tqdm(by_question.items(), desc="VQAv2", unit="q", disable=None, leave=False)]


def summarize_vqav2(units: list[dict]) -> dict:
    """The official VQAv2 result dict from `vqav2_units` records."""
    accs, per_answer, per_question = [], {}, {}
    for unit in units:
        acc = unit["accuracy"]
        accs.append(acc)
        per_question.setdefault(unit["question_type"], []).append(acc)
        per_answer.setdefault(unit["answer_type"], []).append(acc)
    return {
        "accuracy": _percent(accs),
        "per_answer_type": {k: _percent(v) for k, v in per_answer.items()},
        "per_question_type": {k: _percent(v) for k, v in per_question.items()},
        "questions": len(accs),
    }


def _percent(values: list) -> float:
    # Same expression and order as the official setAccuracy, so the rounding agrees to the last digit.
    return round(100 * float(sum(values)) / len(values), 2)


def _load(source, what: str):
    return load_json(source, what) if isinstance(source, (str, Path)) else source


def _as_list(source, key, what: str) -> list:
    data = _load(source, what)
    if key is not None and isinstance(data, dict):
        if key not in data:
            raise LntuneError(f"{source if isinstance(source, (str, Path)) else key}: no '{key}' list; expected {what}")
        data = data[key]
    if not isinstance(data, list):
        raise LntuneError(f"{source if isinstance(source, (str, Path)) else 'input'}: expected {what}")
    return data


def _check_questions(ques_data, by_question: dict, source) -> dict:
    """Check every annotated question is in the questions file; return the Multiple-Choice options."""
    src = source if isinstance(source, (str, Path)) else "questions"
    items = ques_data.get("questions") if isinstance(ques_data, dict) else ques_data
    if not isinstance(items, list):
        raise LntuneError(f"{src}: expected the official questions JSON ({{'questions': [...]}})")
    known = {q.get("question_id"): q for q in items if isinstance(q, dict)}
    missing = [qid for qid in by_question if qid not in known]
    if missing:
        raise LntuneError(f"{src}: {len(missing)} annotated question ids are not in the questions file "
                          f"(first: {first_few(missing)}); are the two files from the same split?")
    task = ques_data.get("task_type") if isinstance(ques_data, dict) else None
    if task != "Multiple Choice":
        return {}
    return {qid: known[qid].get("multiple_choices", []) for qid in by_question}


def _check_ids(predicted: set, by_question: dict, source) -> None:
    missing = [qid for qid in by_question if qid not in predicted]
    unknown = [qid for qid in predicted if qid not in by_question]
    if missing:
        raise LntuneError(f"{source}: {len(missing)} of {len(by_question)} annotated questions have no prediction "
                          f"(first: {first_few(missing)})")
    if unknown:
        raise LntuneError(f"{source}: {len(unknown)} predictions are for question ids not in the annotations "
                          f"(first: {first_few(sorted(unknown, key=str))})")
