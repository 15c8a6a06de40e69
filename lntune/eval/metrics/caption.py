"""Captioning metrics (COCO / Flickr30k Karpathy splits) with pycocoevalcap: CIDEr-D, BLEU-4, ROUGE-L.

    lntune score caption --references dataset_coco.json --predictions P.json [--split test] [--meteor] [--json]

or from Python: `score_captions(references_path, predictions, split="test")`. The references are a
Karpathy split file (images[].{filename, cocoid?, split, sentences[].raw}); predictions are a JSON list
of {"image_id", "caption"} where image_id is the image's cocoid when the references give one, else its
filename. Only the images of `split` are scored (predictions for other splits are ignored), and each of
them needs exactly one prediction.

As the COCO caption evaluation does: references (the raw sentences) and predictions are tokenized by
pycocoevalcap's PTBTokenizer (Stanford CoreNLP, run with `java`), then scored by pycocoevalcap's
Bleu(4), Rouge() and Cider() (CIDEr-D: n=4, sigma=6, document frequencies from the scored split's
references); all reported x100. SPICE is never run (it downloads models). METEOR (also Java) is opt-in
with `meteor=True`: its start-up loads a paraphrase table into a 2 GB heap, about 20 s on a small machine.
Without `java` the tokenizer falls back to `approximate_tokenize` (a pure-Python imitation of PTB
tokenization); the result then says "tokenizer": "approximate" and may differ slightly from official.
"""

import contextlib
import os
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

from lntune.errors import LntuneError
from lntune.jsonio import first_few, item_where, load_json, load_records, required

# Tokens pycocoevalcap's tokenizer drops after PTB tokenization (PTB writes brackets as -LRB- etc.).
_DROPPED = {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--",
            "...", ";"}
_QUOTES = {'"', "\u201c", "\u201d", "\u2013", "\u2014"}  # and dashes, which PTB writes as "--"
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "{": "-lcb-", "}": "-rcb-", "[": "-lsb-", "]": "-rsb-"}
# Characters other than "\n" that end a line for Python or Java; inside a caption they would shift the
# tokenizer's output lines against the captions, so they become spaces before tokenizing.
_LINE_BREAKS = re.compile("[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_KARPATHY = "a Karpathy split JSON ({'images': [{'filename', 'cocoid'?, 'split', 'sentences': [{'raw'}]}]})"


def load_references(references_path, split: str = "test") -> dict:
    """{image_id: [raw reference sentences]} for the images of `split`, in file order."""
    return _split_references(_read_karpathy(references_path), split, references_path)


def _split_references(images: list, split: str, references_path) -> dict:
    refs, splits = {}, set()
    for image_id, image_split, sentences in images:
        splits.add(str(image_split))
        if image_split == split:
            refs[image_id] = sentences
    if not refs:
        raise LntuneError(f"{references_path}: no images in split {split!r} (splits here: "
                          f"{', '.join(sorted(splits)) or 'none'})")
    return refs


def _read_karpathy(references_path) -> list:
    """[(image_id, split, sentences)] for every image of a Karpathy split file."""
    data = load_json(references_path, _KARPATHY)
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise LntuneError(f"{references_path}: no 'images' list; expected {_KARPATHY}")
    out = []
    for i, image in enumerate(images):
        if not isinstance(image, dict) or "split" not in image or not ("cocoid" in image or "filename" in image):
            raise LntuneError(f"{references_path}: images[{i}] needs 'split' and 'cocoid' or 'filename'")
        image_id = image["cocoid"] if "cocoid" in image else image["filename"]
        sentences = [s.get("raw") for s in image.get("sentences", []) if isinstance(s, dict)]
        if not sentences or not all(isinstance(s, str) for s in sentences):
            raise LntuneError(f"{references_path}: image {image_id!r} has no reference sentences (sentences[].raw)")
        out.append((image_id, image["split"], sentences))
    return out


def match_predictions(refs: dict, predictions, known_ids=None, source="predictions") -> dict:
    """{image_id: caption} for every image of `refs`, in its order.

    Predictions for images in `known_ids` but not in `refs` (other splits) are dropped; any other
    image id is an error, as are missing and duplicate predictions.
    """
    if isinstance(predictions, (str, Path)):
        source = predictions
        predictions = load_records(predictions, "caption predictions (a JSON list of {image_id, caption})")
    if not isinstance(predictions, list):
        raise LntuneError(f"{source}: expected a JSON list of {{image_id, caption}}")
    known_ids = set(refs) if known_ids is None else set(known_ids)
    kind = "cocoid integers" if isinstance(next(iter(refs)), int) else "file names"
    caption_of = {}
    for i, pred in enumerate(predictions):
        if not isinstance(pred, dict) or "image_id" not in pred:
            raise LntuneError(f"{source}: item {i} has no 'image_id'")
        image_id = pred["image_id"]
        at = item_where(pred, i, source)
        if image_id in caption_of:
            raise LntuneError(f"{at}: second prediction for image {image_id!r}")
        caption_of[image_id] = str(required(pred, "caption", at))  # "" is a caption; missing/null is not
    unknown = [image_id for image_id in caption_of if image_id not in known_ids]
    if unknown:
        raise LntuneError(f"{source}: {len(unknown)} predictions are for images not in the references "
                          f"(first: {first_few(unknown)}; image_id must be the references' {kind})")
    missing = [image_id for image_id in refs if image_id not in caption_of]
    if missing:
        raise LntuneError(f"{source}: {len(missing)} of {len(refs)} images have no prediction "
                          f"(first: {first_few(missing)})")
    return {image_id: caption_of[image_id] for image_id in refs}


def approximate_tokenize(text: str) -> str:
    """Lower-cased tokens close to pycocoevalcap's PTB tokenization, punctuation removed (no Java).

    Like the official pipeline, brackets survive as "-lrb-", "-rrb-", ... (PTB's names, lower-cased
    after the punctuation filter had looked for the upper-case ones).
    """
    text = _LINE_BREAKS.sub(" ", text).lower().replace("\u2019", "'").replace("\u2018", "'")
    text = re.sub(r"\bcannot\b", "can not", text)
    text = re.sub(r"(\w)(n't)\b", r"\1 \2", text)
    text = re.sub(r"(\w)('(?:s|re|ve|ll|d|m))\b", r"\1 \2", text)
    tokens = re.findall(r"n't|'(?:s|re|ve|ll|d|m)\b|(?:[a-z]\.){2,}|\d+(?:[.,:]\d+)+|\w+(?:[-.']\w+)*|\.\.\.|--|\S",
                        text)
    tokens = [_BRACKETS.get(t, t) for t in tokens]
    return " ".join(t for t in tokens if t not in _DROPPED and t not in _QUOTES)


def score_captions(references_path, predictions, split: str = "test", meteor: bool = False, bootstrap: int = 0,
                   seed: int = 0) -> dict:
    """Caption metrics (x100) of `predictions` on the `split` images of a Karpathy references file.

    Returns {"CIDEr", "BLEU-4", "ROUGE-L", ["METEOR",] "images": n, "split": split,
    "tokenizer": "ptb" | "approximate"}, plus "ci95" for CIDEr, BLEU-4 and ROUGE-L (bootstrap over
    images, each metric recomputed on every resample; `bootstrap` resamples seeded by `seed`) when
    bootstrap > 0.
    """
    from lntune.eval.intervals import score_units

    units, tokenizer = caption_units(references_path, predictions, split)
    return score_units("caption", units, bootstrap, seed, meteor=meteor, split=split, tokenizer=tokenizer)


def caption_units(references_path, predictions, split: str = "test") -> tuple[list[dict], str]:
    """([{"id", "candidate", "references"}] per image of `split`, tokenized, in file order; the tokenizer
    used, "ptb" or "approximate"), checked as `score_captions` describes."""
    images = _read_karpathy(references_path)
    refs = _split_references(images, split, references_path)
    hyps = match_predictions(refs, predictions, known_ids=[image_id for image_id, _, _ in images])
    if shutil.which("java") is not None:
        gts, res, tokenizer = _ptb_tokenize(refs), _ptb_tokenize({k: [v] for k, v in hyps.items()}), "ptb"
    else:
        warnings.warn("java not found: captions are tokenized by lntune's approximate tokenizer, so the "
                      "scores are close to, but not exactly, the official ones", stacklevel=3)
        gts = {k: [approximate_tokenize(s) for s in v] for k, v in refs.items()}
        res = {k: [approximate_tokenize(v)] for k, v in hyps.items()}
        tokenizer = "approximate"
    return [{"id": k, "candidate": res[k][0], "references": gts[k]} for k in gts], tokenizer


def summarize_captions(units: list[dict], meteor: bool = False, split: str = "test",
                       tokenizer: str = "ptb") -> dict:
    """The pycocoevalcap scores of `caption_units` records (METEOR needs java and the PTB tokenizer)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    gts = {unit["id"]: list(unit["references"]) for unit in units}
    res = {unit["id"]: [unit["candidate"]] for unit in units}
    result = {
        "CIDEr": 100 * float(Cider().compute_score(gts, res)[0]),
        "BLEU-4": 100 * float(Bleu(4).compute_score(gts, res, verbose=0)[0][3]),
        "ROUGE-L": 100 * float(Rouge().compute_score(gts, res)[0]),
    }
    if meteor and tokenizer != "ptb":
        warnings.warn("java not found: METEOR left out", stacklevel=3)
    elif meteor:
        from pycocoevalcap.meteor.meteor import Meteor

        result["METEOR"] = 100 * float(Meteor().compute_score(gts, res)[0])
    result.update(images=len(units), split=split, tokenizer=tokenizer)
    return result


def _ptb_tokenize(captions: dict) -> dict:
    """pycocoevalcap's PTBTokenizer on {image_id: [sentence, ...]}, with Java's chatter kept off stderr."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    records = {k: [{"caption": _LINE_BREAKS.sub(" ", s)} for s in v] for k, v in captions.items()}
    with tempfile.TemporaryFile(mode="w+") as log:
        with _stderr_to(log):
            try:
                tokenized = PTBTokenizer().tokenize(records)
            except OSError as err:
                raise LntuneError(f"pycocoevalcap's PTBTokenizer failed ({err}); it runs `java` and writes a "
                                  "temporary file next to its jar, which must be writable") from None
        if list(tokenized) != list(captions) or any(len(tokenized[k]) != len(v) for k, v in captions.items()):
            log.seek(0)
            raise LntuneError("pycocoevalcap's PTBTokenizer (java) returned fewer lines than captions; "
                              f"its messages: {log.read()[-500:]!r}")
    return tokenized


@contextlib.contextmanager
def _stderr_to(handle):
    """Point file descriptor 2 (inherited by child processes such as java) at `handle` for a while."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        os.dup2(handle.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
