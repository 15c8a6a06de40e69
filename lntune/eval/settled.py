"""Stop a generating row once its answer is settled: more text could not change what the official scorer reads.

    from lntune.eval.settled import SettledAnswers
    criterion = SettledAnswers(tokenizer, prompt_length, settled=pope_answer_settled)
    model.generate(**inputs, stopping_criteria=StoppingCriteriaList([criterion]))
    criterion.lengths   # {row: new tokens it had when it was settled}

`settled(text)` gets what lntune would store for the row at that step (its new tokens decoded without
special tokens, stripped) and must be true only when the official parser gives the same answer for that
text and for every text that continues it (lntune/eval/metrics: `pope_answer_settled`,
`mme_answer_settled`). Kept text is then a prefix of the text the row would have produced, as long as the
text of some tokens is a prefix of the text of those tokens and more: true of byte-level BPE and
SentencePiece decoding except for a character whose bytes are not all generated yet, so a row whose text
ends in U+FFFD (the mark of such a character) is never settled, and `keeps_prefixes` turns the rule off for
tokenizers that rewrite spaces on decoding (`clean_up_tokenization_spaces`). Greedy decoding only: under
sampling, stopping early would change the random draws of later batches.
"""

from __future__ import annotations

from typing import Callable

import torch
from transformers import StoppingCriteria

INCOMPLETE_CHARACTER = "\ufffd"


def keeps_prefixes(tokenizer) -> bool:
    """Whether decoding this tokenizer's tokens one more at a time only ever appends text (see above)."""
    return not getattr(tokenizer, "clean_up_tokenization_spaces", False)


class SettledAnswers(StoppingCriteria):
    """A transformers stopping criterion: each row stops once `settled` holds for its decoded text."""

    def __init__(self, tokenizer, prompt_length: int, settled: Callable[[str], bool]):
        self.tokenizer, self.prompt_length, self.settled = tokenizer, prompt_length, settled
        self.lengths: dict[int, int] = {}

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        new = input_ids[:, self.prompt_length:]
        for row in range(new.shape[0]):
            if row not in self.lengths and self._settled(new[row]):
                self.lengths[row] = new.shape[1]
        return torch.tensor([row in self.lengths for row in range(new.shape[0])], dtype=torch.bool,
                            device=input_ids.device)

    def _settled(self, tokens) -> bool:
        text = self.tokenizer.decode(tokens, skip_special_tokens=True).strip()
        return not text.endswith(INCOMPLETE_CHARACTER) and self.settled(text)
