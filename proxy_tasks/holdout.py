"""Carve a selection split and a scoring split out of a task's training data, kept out of fine-tuning.

A GLUE dev set is small (SST-2 872 sentences, MRPC 408 pairs, RTE 277): at 80 % accuracy the binomial standard
error of one score on 872 examples is 1.4 points, larger than most differences a distillation study asks about.
The training files are large (SST-2 67,349 phrases), so the final stage scores every fine-tuned student on examples
drawn from the training file as well, which no fine-tuning ever sees:

* ``score`` — the **scoring split**: the verdicts and yardsticks are read on it (with the official dev score
  alongside);
* ``select`` — the **selection split**: the fine-tuning learning rate is chosen on it, never on the split that
  scores.

Both are drawn once, with their own seed, *before* the fine-tuning subset (``max_train``), from the training
examples that look like the dev set: at least as many words as the dev set's 10th percentile (SST-2's training
file is mostly short sub-phrases of its sentences, median 7 words against the dev set's 19).  Then every training
example that leaks into them is dropped from the fine-tuning pool: for single-sentence tasks a training text that
contains a held-out text, or is contained in one and has at least half its words (SST-2's phrases are spans of
parse trees, so a sentence and its phrases share labels); for pair tasks an identical pair.  The fine-tuning subset
is drawn from what is left.

:func:`hold_out` raises :class:`TaskError` (one sentence) when the training file cannot spare the splits.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from .data import Example, TaskData
from .registry import TaskError

__all__ = ["SCORE", "SELECT", "hold_out", "words"]

SCORE, SELECT = "score", "select"
_HOLDOUT_SEED = 7919                # the held-out splits' own seed: the same splits whatever max_train's seed is


def words(example: Example) -> int:
    """Words of an example (both texts of a pair)."""
    return len(example.text_a.split()) + (len(example.text_b.split()) if example.text_b else 0)


def hold_out(data: TaskData, *, score: int, select: int, max_train: int | None, seed: int = 0) -> TaskData:
    """``data`` with ``score`` and ``select`` examples of its training file held out (``data.held_out``) and the
    fine-tuning examples (``data.train``) drawn from the rest, ``max_train`` of them (None: all that is left).

    Raises:
        TaskError: negative sizes, or a training file that cannot spare ``score + select`` examples that look like
            the dev set and still leave ``max_train`` (or, with None, any) examples to fine-tune on.
    """
    name = data.task.name
    for key, value in (("score", score), ("select", select)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise TaskError(f"the held-out {key} split of {name} must be a whole number >= 0, got {value!r}")
    if score + select == 0:
        return data
    train = data.train
    dev = [e for split in data.dev.values() for e in split]
    floor = int(np.percentile([words(e) for e in dev], 10)) if dev else 0
    eligible = [i for i, e in enumerate(train) if words(e) >= floor]
    wanted = score + select
    if wanted > len(eligible):
        raise TaskError(f"task {name} cannot hold out {wanted} training examples ({score} to score, {select} to "
                        f"select the learning rate): only {len(eligible)} of its {len(train)} have the dev set's "
                        f"length (>= {floor} words); lower compare.score_examples / compare.select_examples")
    rng = np.random.default_rng(_HOLDOUT_SEED)
    chosen = rng.choice(len(eligible), size=wanted, replace=False)
    held_idx = [eligible[int(i)] for i in chosen]
    score_idx, select_idx = sorted(held_idx[:score]), sorted(held_idx[score:])
    held = set(held_idx)
    pool = [i for i in range(len(train)) if i not in held]
    leaked = _leaks(train, [train[i] for i in held_idx], pool, pair=data.task.is_pair)
    pool = [i for i in pool if i not in leaked]
    need = max_train or 1
    if len(pool) < need:
        raise TaskError(f"task {name} has {len(train)} training examples: after holding out {wanted} (and {len(leaked)} "
                        f"that overlap them) {len(pool)} are left, fewer than the {need} to fine-tune on; lower "
                        f"compare.score_examples / compare.select_examples or compare.max_train")
    if max_train is not None and max_train < len(pool):
        keep = np.sort(np.random.default_rng(seed).choice(len(pool), size=max_train, replace=False))
        pool = [pool[int(i)] for i in keep]
    held_out = {SCORE: tuple(train[i] for i in score_idx), SELECT: tuple(train[i] for i in select_idx)}
    return TaskData(task=data.task, train=tuple(train[i] for i in pool), dev=data.dev, source=data.source,
                    held_out={k: v for k, v in held_out.items() if v})


def _leaks(train: Sequence[Example], held: Sequence[Example], pool: Sequence[int], *, pair: bool) -> set[int]:
    """Indices of ``pool`` whose example leaks into ``held`` (see the module docstring)."""
    if pair:
        def key(e: Example) -> tuple[str, str]:
            return " ".join(e.text_a.split()), " ".join((e.text_b or "").split())

        keys = {key(e) for e in held}
        return {i for i in pool if key(train[i]) in keys}
    norm = {i: " ".join(train[i].text_a.split()) for i in pool}
    leaked: set[int] = set()
    # a training text that contains a held-out text: find every occurrence in one joined string of the pool's texts
    order = list(pool)
    starts, chunks, offset = [], [], 0
    for i in order:
        starts.append(offset)
        chunks.append(norm[i])
        offset += len(norm[i]) + 1
    joined = "\n".join(chunks)
    for h in held:
        text = " ".join(h.text_a.split())
        at = joined.find(text)
        while at >= 0:
            leaked.add(order[bisect.bisect_right(starts, at) - 1])
            at = joined.find(text, at + 1)
    # a training text inside a held-out text with at least half its words: every such span of every held-out text
    spans: set[str] = set()
    for h in held:
        toks = h.text_a.split()
        n = len(toks)
        for length in range(max(1, (n + 1) // 2), n + 1):
            for start in range(0, n - length + 1):
                spans.add(" ".join(toks[start:start + length]))
    leaked.update(i for i in pool if norm[i] in spans)
    return leaked
