"""CIDEr-D, BLEU-4 and ROUGE-L of resampled image sets, vectorised, for the caption bootstrap.

    stat = caption_statistic(units)          # units: lntune.eval.metrics.caption.caption_units records
    values = stat(weights)                   # weights: (resamples x images) draw counts
    values["CIDEr"]                          # one CIDEr-D x100 per resample

Each resample is scored as if its images (with their repeats) were the whole test set, which is what
pycocoevalcap would compute on it: CIDEr-D's document frequencies count the resampled images' reference
sets (a repeated image counts as often as it is drawn) and its log(N) term uses the resample's size;
BLEU-4 is a corpus statistic (clipped n-gram matches and lengths summed over the resample); ROUGE-L is the
mean of per-image scores. With a row of ones each value equals pycocoevalcap's (tests check this, and
that a resample equals pycocoevalcap run on the duplicated images).

The captions are tokenized once (by the scorer) and their n-gram counts computed once, here; a resample
is then a few sparse products (lntune.eval.bootstrap.SparseRows) over those counts, so 1,000 resamples
of the 5,000-image COCO test split take seconds rather than the hours of re-running pycocoevalcap.
"""

from __future__ import annotations

import numpy as np

from lntune.eval.bootstrap import SparseRows

ORDERS = 4  # CIDEr-D and BLEU use 1- to 4-grams
SIGMA = 6.0  # CIDEr-D's length penalty width
TINY, SMALL = 1e-15, 1e-9  # BLEU's smoothing constants, as pycocoevalcap has them


def caption_statistic(units: list[dict]):
    """A statistic (weights -> {"CIDEr", "BLEU-4", "ROUGE-L"} arrays, x100) for `caption_units` records."""
    cider = ResampledCider([u["candidate"] for u in units], [u["references"] for u in units])
    bleu = _bleu_stats(units)
    rouge = _rouge_scores(units)
    n = len(units)

    def statistic(weights: np.ndarray) -> dict:
        return {"CIDEr": cider(weights), "BLEU-4": _bleu4(weights @ bleu), "ROUGE-L": 100 * (weights @ rouge) / n}

    statistic.cost = cider.cost
    return statistic


class ResampledCider:
    """CIDEr-D (x100) of candidates against references on resampled image sets; see the module docstring."""

    def __init__(self, candidates: list[str], references: list[list[str]], sigma: float = SIGMA):
        from pycocoevalcap.cider.cider_scorer import precook

        self.n = len(candidates)
        vocabulary: dict[tuple, int] = {}

        def index(ngram):
            return vocabulary.setdefault(ngram, len(vocabulary))

        cand_counts = [precook(c, ORDERS) for c in candidates]
        doc_rows, doc_cols = [], []          # n-gram x image: the n-gram occurs in the image's references
        hyp = ([], [], [])                   # (image, order) x n-gram: candidate term frequency squared
        ref = ([], [], [])                   # (pair, order) x n-gram: reference term frequency squared
        num = ([], [], [])                   # (pair, order) x n-gram: min(candidate tf, reference tf) x reference tf
        pair_gauss, image_starts, refs_per_image = [], [], []
        pair = 0
        for image, (counts, refs) in enumerate(zip(cand_counts, references)):
            for ngram, tf in counts.items():
                _add(hyp, image * ORDERS + len(ngram) - 1, index(ngram), tf * tf)
            seen = set()
            image_starts.append(pair)
            refs_per_image.append(len(refs))
            for sentence in refs:
                ref_counts = precook(sentence, ORDERS)
                for ngram, tf in ref_counts.items():
                    column = index(ngram)
                    _add(ref, pair * ORDERS + len(ngram) - 1, column, tf * tf)
                    if ngram in counts:
                        _add(num, pair * ORDERS + len(ngram) - 1, column, min(counts[ngram], tf) * tf)
                    seen.add(column)
                # pycocoevalcap's "length" counts bigrams (its order index 1), and so does this.
                delta = float(_bigrams(counts) - _bigrams(ref_counts))
                pair_gauss.append(np.e ** (-(delta ** 2) / (2 * sigma ** 2)))
                pair += 1
            doc_rows += sorted(seen)
            doc_cols += [image] * len(seen)
        self.vocabulary = len(vocabulary)
        self.documents = SparseRows(doc_rows, doc_cols, np.ones(len(doc_rows)), self.vocabulary)
        self.hyp = SparseRows(*hyp, self.n * ORDERS)
        self.ref = SparseRows(*ref, pair * ORDERS)
        self.num = SparseRows(*num, pair * ORDERS)
        self.pair_gauss = np.asarray(pair_gauss)
        self.pair_image = np.repeat(np.arange(self.n), refs_per_image)
        self.image_starts = np.asarray(image_starts)
        self.refs_per_image = np.asarray(refs_per_image, dtype=float)
        self.cost = self.documents.size + self.hyp.size + self.ref.size + self.num.size + self.vocabulary

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        b = weights.shape[0]
        document_frequency = self.documents.apply(weights)                        # (b, vocabulary)
        idf = np.log(float(self.n)) - np.log(np.maximum(1.0, document_frequency))
        idf2 = idf * idf
        hyp_norm = np.sqrt(self.hyp.apply(idf2)).reshape(b, self.n, ORDERS)
        ref_norm = np.sqrt(self.ref.apply(idf2)).reshape(b, -1, ORDERS)
        value = self.num.apply(idf2).reshape(b, -1, ORDERS)
        hyp_norm = hyp_norm[:, self.pair_image, :]
        both = (hyp_norm != 0) & (ref_norm != 0)
        value = np.where(both, value / np.where(both, hyp_norm * ref_norm, 1.0), value)
        value = value * self.pair_gauss[None, :, None]
        per_image = np.add.reduceat(value.sum(axis=2), self.image_starts, axis=1)   # (b, images)
        scores = per_image / ORDERS / self.refs_per_image * 10.0
        return 100 * np.sum(weights * scores, axis=1) / self.n


def _add(entries, row, column, value) -> None:
    entries[0].append(row)
    entries[1].append(column)
    entries[2].append(value)


def _bigrams(counts: dict) -> int:
    return sum(tf for ngram, tf in counts.items() if len(ngram) == 2)


def _bleu_stats(units: list[dict]) -> np.ndarray:
    """Per image: [candidate length, closest reference length, guesses(1..4), correct(1..4)], as
    pycocoevalcap's BleuScorer counts them (option "closest")."""
    from pycocoevalcap.bleu.bleu_scorer import cook_refs, cook_test

    rows = []
    for unit in units:
        cooked = cook_test(unit["candidate"], cook_refs(unit["references"], n=ORDERS), n=ORDERS)
        testlen = cooked["testlen"]
        reflen = min((abs(length - testlen), length) for length in cooked["reflen"])[1]
        rows.append([testlen, reflen] + list(cooked["guess"]) + list(cooked["correct"]))
    return np.asarray(rows, dtype=float)


def _bleu4(totals: np.ndarray) -> np.ndarray:
    """BLEU-4 (x100) from summed `_bleu_stats` columns, one row per resample, in pycocoevalcap's order."""
    bleu = np.ones(totals.shape[0])
    for k in range(ORDERS):
        bleu = bleu * ((totals[:, 2 + ORDERS + k] + TINY) / (totals[:, 2 + k] + SMALL))
    bleu = bleu ** (1.0 / ORDERS)
    ratio = (totals[:, 0] + TINY) / (totals[:, 1] + SMALL)
    penalty = np.where(ratio < 1, np.exp(1 - 1 / np.where(ratio < 1, ratio, 1.0)), 1.0)
    return 100 * bleu * penalty


def _rouge_scores(units: list[dict]) -> np.ndarray:
    """pycocoevalcap's ROUGE-L of each image (the corpus score is their mean)."""
    from pycocoevalcap.rouge.rouge import Rouge

    rouge = Rouge()
    return np.asarray([rouge.calc_score([u["candidate"]], list(u["references"])) for u in units], dtype=float)

