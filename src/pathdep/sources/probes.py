"""Token-level probe tasks for imported language models.

The training data of a hub suite is not at hand, so its task is a fixed probe text, encoded once
with the suite's tokenizer (or given as token ids) and stored with the study:

- ``causal``: windows of ``seq_len + 1`` tokens (stride ``seq_len``); every position is scored
  on the next token (a :class:`~pathdep.tasks.sequence.SequenceTask`: per-token loss, prediction,
  correctness and margin, each token one example);
- ``masked``: windows of ``seq_len`` tokens (stride 1) whose middle token is replaced by the mask
  token; the example is that one position and its label the original token (a plain ``ce`` task;
  the model reads out the middle position).

``train`` and ``test`` are the same windows (there is no held-out split of a probe text).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from pathdep.errors import PathdepError
from pathdep.tasks.base import Split, Task
from pathdep.tasks.sequence import SequenceTask, shift

#: A short English probe text (written for this package) used when none is given.
DEFAULT_TEXT = (
    "The river runs past the old mill and under the stone bridge before it reaches the sea. "
    "In the morning the baker opens the shop, and the first customers buy bread, milk and eggs. "
    "Two plus three is five, and five plus five is ten. The cat sat on the mat; the dog sat on the rug. "
    "When it rains, people carry umbrellas, and when the sun shines, children play in the park. "
    "She said that she would come back tomorrow, but he was not sure that she would. "
    "A B C D E F G, one two three four five six seven, Monday Tuesday Wednesday Thursday Friday. "
    "The committee met on Tuesday to discuss the budget for the next year and agreed to meet again in June."
)


def windows(tokens: Tensor, length: int, stride: int) -> Tensor:
    """Overlapping windows of a 1-D token tensor: (n,) -> (W, length)."""
    if tokens.numel() < length:
        raise PathdepError(f"The probe text has {tokens.numel()} tokens; it needs at least {length} "
                           f"(seq_len {length}). Give a longer text or a smaller seq_len.")
    return tokens.unfold(0, length, stride).contiguous()


def causal_task(tokens: Tensor, seq_len: int, vocab: int) -> SequenceTask:
    """Next-token prediction on every position of the probe windows: x, y (N, seq_len)."""
    split = shift(windows(tokens.long(), seq_len + 1, seq_len))
    return SequenceTask(name="probe_text", train=split, test=split, probes={}, n_outputs=vocab,
                        doc="next-token prediction on a fixed probe text")


def masked_task(tokens: Tensor, seq_len: int, vocab: int, mask_token_id: int | None) -> Task:
    """The middle token of each window masked and predicted: x (N, seq_len), y (N,)."""
    if mask_token_id is None:
        raise PathdepError("A masked-LM probe needs the 'mask_token_id' (the tokenizer's [MASK] id); "
                           "the cache has no tokenizer to read it from, so pass it explicitly.")
    x = windows(tokens.long(), seq_len, 1).clone()
    mid = masked_position(seq_len)
    y = x[:, mid].clone()
    x[:, mid] = mask_token_id
    split = Split(x, y)
    return Task(name="probe_text_masked", train=split, test=split, probes={}, n_outputs=vocab, loss_kind="ce",
                doc="masked-token prediction on a fixed probe text")


def masked_position(seq_len: int) -> int:
    return seq_len // 2


def causal_readout(seq_len: int) -> None:
    return None


#: objective -> (task builder from (tokens, args), the position the model reads out)
OBJECTIVES: dict[str, tuple[Callable[[Tensor, dict[str, Any]], Task], Callable[[int], int | None]]] = {
    "causal": (lambda t, a: causal_task(t, a["seq_len"], a["vocab"]), causal_readout),
    "masked": (lambda t, a: masked_task(t, a["seq_len"], a["vocab"], a.get("mask_token_id")), masked_position),
}


def token_task(tokens: Tensor, args: dict[str, Any]) -> Task:
    """The probe task of ``args['objective']`` ("causal" or "masked") over ``tokens`` (n,)."""
    return OBJECTIVES[args["objective"]][0](tokens, args)


def readout(args: dict[str, Any]) -> int | None:
    return OBJECTIVES[args["objective"]][1](args["seq_len"])
