"""Character-level language model on the Python standard library's own source files.

The corpus ships with every Python: the top-level ``*.py`` files of ``sysconfig``'s ``stdlib``
directory whose names do not start with ``_`` and whose size is in [4 KB, 40 KB], in sorted name
order; the first files fill ``train_chars`` characters, the next ones ``test_chars`` (held-out
files, not held-out lines). Characters are mapped to a fixed 96-token vocabulary (newline and
printable ASCII); a tab becomes four spaces, anything else ``?``. ``corpus_files`` and
``corpus_sha256`` on the task record exactly what was read (the files differ between Python
versions).

Training examples are windows of ``seq_len + 1`` characters at a stride of ``seq_len // 2``.
Every token of the ``test`` split is scored (per-token losses for the analyses in
:mod:`pathdep.analyses.tokens`), and its ``extra`` names behaviour subsets of tokens, each giving
``test_{name}_loss`` / ``_acc`` properties:

- ``after_newline``: the first character of a line (indentation or a keyword);
- ``indent``: a space of a line's leading indentation;
- ``closing``: a closing bracket whose opening bracket is earlier in the window (bracket matching);
- ``capital``: an upper-case letter starting a word (``class Foo``, ``True``, a docstring).

The ``copy`` probe ends each held-out window with a fresh random 8-letter name written twice
(``\\n{name} = 1\\nprint({name})``); its ``copied`` tokens are letters 2..8 of the second
occurrence, which only copying can predict. Solution type: ``copy_copied_acc``.
"""

from __future__ import annotations

import hashlib
import string
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from pathdep.errors import PathdepError
from pathdep.tasks.base import Split
from pathdep.tasks.sequence import SequenceTask, shift

VOCAB = "\n" + "".join(chr(c) for c in range(32, 127))  # 96 tokens: newline + printable ASCII
INDEX = {c: i for i, c in enumerate(VOCAB)}
OPENERS, CLOSERS = "([{", ")]}"


class TextArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    seq_len: int = Field(64, ge=8, description="characters the model sees per window")
    train_chars: int = Field(300_000, ge=1000, description="characters of training text")
    test_chars: int = Field(40_000, ge=1000, description="characters of held-out text (other files)")
    n_test: int = Field(256, ge=1, description="held-out windows scored per checkpoint (evenly spread)")
    copy_len: int = Field(8, ge=2, le=20, description="length of the copied name in the copy probe")
    seed: int = Field(0, description="seed of the copy probe's random names (not of any run)")


def encode(text: str) -> Tensor:
    """Token ids (len,) of a text in the fixed vocabulary (tab -> 4 spaces, unknown -> '?')."""
    raw = text.replace("\t", "    ").encode("ascii", errors="replace")  # non-ASCII -> b"?"
    table = torch.full((256,), INDEX["?"], dtype=torch.long)
    for c, i in INDEX.items():
        table[ord(c)] = i
    return table[torch.frombuffer(bytearray(raw), dtype=torch.uint8).long()]


def decode(tokens: Tensor) -> str:
    return "".join(VOCAB[int(t)] for t in tokens)


def corpus_files(stdlib: Path | None = None) -> list[Path]:
    """The fixed selection of standard-library source files, in order."""
    root = Path(stdlib or sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.glob("*.py") if not p.name.startswith("_") and 4000 <= p.stat().st_size <= 40000)
    if not files:
        raise PathdepError(f"No standard-library source files found under {str(root)!r}.")
    return files


def read_corpus(train_chars: int, test_chars: int) -> tuple[str, str, list[str]]:
    """Training text, held-out text (later files) and the names of the files read."""
    parts: list[str] = []
    used: list[str] = []
    total, split_at = 0, None
    for path in corpus_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        parts.append(text)
        used.append(path.name)
        total += len(text)
        if split_at is None and total >= train_chars:
            split_at = total  # the held-out text starts with the next file
        elif split_at is not None and total >= split_at + test_chars:
            break
    corpus = "".join(parts)
    if split_at is None or len(corpus) < split_at + test_chars:
        raise PathdepError(f"The standard library holds only {len(corpus)} characters of source; asked for {train_chars + test_chars}.")
    return corpus[:split_at], corpus[split_at : split_at + test_chars], used


def windows(tokens: Tensor, length: int, stride: int) -> Tensor:
    """Windows (N, length) of a token stream at a stride."""
    return tokens.unfold(0, length, stride).contiguous()


def behaviour_masks(x: Tensor, y: Tensor) -> dict[str, Tensor]:
    """The behaviour subsets of tokens (see the module docstring): each (N, T) bool."""
    nl, space = INDEX["\n"], INDEX[" "]
    upper = torch.tensor([INDEX[c] for c in string.ascii_uppercase])
    word_start = torch.tensor([INDEX[c] for c in " \n\"'(.[_"])
    line_start = torch.zeros_like(x, dtype=torch.bool)  # x[t] is in a line's leading spaces (or is the newline)
    for t in range(x.shape[1]):
        prev = line_start[:, t - 1] if t else torch.zeros(x.shape[0], dtype=torch.bool)
        line_start[:, t] = (x[:, t] == nl) | (prev & (x[:, t] == space))
    return {
        "after_newline": x == nl,
        "indent": line_start & (y == space),
        "closing": _matched_closers(x, y),
        "capital": torch.isin(y, upper) & torch.isin(x, word_start),
    }


def _matched_closers(x: Tensor, y: Tensor) -> Tensor:
    """(N, T) bool: y[t] closes a bracket opened at an earlier position of the window."""
    seqs = torch.cat([x, y[:, -1:]], dim=1).tolist()  # (N, T + 1)
    out = torch.zeros_like(y, dtype=torch.bool)
    opener_of = {INDEX[c]: INDEX[o] for o, c in zip(OPENERS, CLOSERS)}
    openers = {INDEX[o] for o in OPENERS}
    for n, seq in enumerate(seqs):
        stack: list[int] = []
        for i, tok in enumerate(seq):
            if tok in openers:
                stack.append(tok)
            elif tok in opener_of:
                if stack and stack[-1] == opener_of[tok] and i >= 1:
                    out[n, i - 1] = True  # predicted from position i - 1
                if stack:
                    stack.pop()
    return out


def copy_probe(test: Tensor, n: int, seq_len: int, copy_len: int, gen: torch.Generator) -> Split:
    """Held-out windows ending in ``\\n{name} = 1\\nprint({name})`` with a random lowercase name."""
    tail_len = 2 * copy_len + len("\n = 1\nprint()")
    if tail_len >= seq_len:
        raise PathdepError(f"The copy probe needs seq_len > {tail_len}. Got seq_len={seq_len} instead.")
    starts = torch.randint(0, len(test) - seq_len - 1, (n,), generator=gen)
    letters = torch.tensor([INDEX[c] for c in string.ascii_lowercase])
    names = letters[torch.randint(0, 26, (n, copy_len), generator=gen)]  # (n, k)
    seqs = torch.stack([test[s : s + seq_len + 1] for s in starts.tolist()])  # (n, T + 1)
    head, mid, end = encode("\n"), encode(" = 1\nprint("), encode(")")
    tails = torch.cat([head.expand(n, -1), names, mid.expand(n, -1), names, end.expand(n, -1)], dim=1)
    seqs[:, -tails.shape[1] :] = tails
    s = shift(seqs)
    copied = torch.zeros_like(s.y, dtype=torch.bool)
    second = seq_len + 1 - 1 - copy_len  # index in seqs of the second name's first letter
    copied[:, second : second + copy_len - 1] = True  # y[t] = seqs[t + 1]: letters 2..k
    return Split(s.x, s.y, {"copied": copied})


@dataclass(frozen=True, eq=False)
class TextTask(SequenceTask):
    """See the module docstring."""

    corpus_files: tuple[str, ...] = ()
    corpus_sha256: str = ""
    vocab: str = field(default=VOCAB)


def build(args: TextArgs) -> TextTask:
    train_text, test_text, used = read_corpus(args.train_chars, args.test_chars)
    train_tok, test_tok = encode(train_text), encode(test_text)
    train = shift(windows(train_tok, args.seq_len + 1, max(1, args.seq_len // 2)))
    test_all = windows(test_tok, args.seq_len + 1, args.seq_len + 1)  # non-overlapping
    test_w = test_all[torch.linspace(0, len(test_all) - 1, min(args.n_test, len(test_all))).round().long()]
    test = shift(test_w)
    test = Split(test.x, test.y, behaviour_masks(test.x, test.y))
    gen = torch.Generator().manual_seed(args.seed)
    return TextTask(
        name="char_lm",
        train=train,
        test=test,
        probes={"copy": copy_probe(test_tok, min(args.n_test, 128), args.seq_len, args.copy_len, gen)},
        n_outputs=len(VOCAB),
        loss_kind="ce",
        solution_property="copy_copied_acc",
        doc=__doc__.splitlines()[0],
        corpus_files=tuple(used),
        corpus_sha256=hashlib.sha256((train_text + test_text).encode()).hexdigest(),
    )
