"""The token set a pair is cached on, with per-token labels.

Per problem, the texts of `cache.texts`: the gold CoT, the gold CoT with one number changed,
and each model's own generated CoT (from the behaviour stage). All are rendered with the
base model's prompt and tokenized with the pair's one tokenizer, so every model reads the
same token ids: the caches are token-aligned pairs.

Labels per token (the label of its first non-space character, so that " but" is the word
but, not the space before it; special tokens are question tokens before any text and
answer tokens after):
    role        question / step / answer (experiments.tasks.ROLES)
    step        index of the CoT step the token is in (-1 outside steps)
    word        index in `cache.words` of the reasoning word the token is part of (-1: none)
    rword       1 on reasoning-word tokens inside the CoT and the answer (ReasonScore's anchors)
    value       on every token of a step that states an equation `a op b = c`, its result c
                (the intermediate value, as the organisms' value labels; -1 elsewhere, and
                where c is not a whole number in 0..32767)
    example     the problem's index (the held-out split is by problem)
    difficulty  the gold solution's number of steps
    variant     index of the text in CACHE_TEXTS
    source      for generated texts, the index of the model that generated it (-1 otherwise)
    answerable  0 for a problem whose right output is to abstain (only its generated texts)
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from experiments.pairs.config import CACHE_TEXTS
from experiments.tasks.protocol import ROLE_ANSWER, ROLE_QUESTION, ROLE_STEP, UNDEFINED
from experiments.tasks.text import TextProblem, TextTaskConfig, insert_mistake, render_cot
from experiments.tasks.text_steps import equation

SEQ_LABELS = ("example", "difficulty", "variant", "source", "answerable")


class Labelled:
    """A text built piece by piece with per-character role and step labels."""

    def __init__(self):
        self.text = ""
        self.role: list[int] = []
        self.step: list[int] = []
        self.value: list[int] = []

    def add(self, piece: str, role: int, step: int = UNDEFINED) -> None:
        self.text += piece
        self.role += [role] * len(piece)
        self.step += [step] * len(piece)
        self.value += [UNDEFINED] * len(piece)

    def add_cot(self, cot: str, steps: Sequence[str]) -> None:
        """A CoT as written (whitespace kept), each step's characters labelled with its index."""
        role = np.full(len(cot), ROLE_STEP)
        step = np.full(len(cot), UNDEFINED)
        value = np.full(len(cot), UNDEFINED)
        at = 0
        for j, s in enumerate(steps):
            k = cot.find(s, at)
            if k < 0:  # segment_steps strips; a step is always found in order
                raise ValueError(f"step {j} {s!r} is not in its CoT")
            step[k:k + len(s)] = j
            eq = equation(s)
            if eq is not None and float(eq[3]).is_integer() and 0 <= eq[3] < 1 << 15:
                value[k:k + len(s)] = int(eq[3])
            at = k + len(s)
        self.text += cot
        self.role += role.tolist()
        self.step += step.tolist()
        self.value += value.tolist()


def word_labels(text: str, roles: np.ndarray, words: Sequence[str]) -> np.ndarray:
    """(len(text),) index of the reasoning word each character belongs to (-1: none); words
    match whole, case-insensitively, in the CoT and the answer only."""
    out = np.full(len(text), UNDEFINED, np.int64)
    pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)
    lower = [w.lower() for w in words]
    for m in pattern.finditer(text):
        if roles[m.start()] != ROLE_QUESTION:
            out[m.start():m.end()] = lower.index(m.group(1).lower())
    return out


def texts(problems: Sequence[TextProblem], prompts: Sequence[str], generations: dict[str, list[dict]],
          task: TextTaskConfig, kinds: Sequence[str], seed: int) -> list[tuple[Labelled, dict[str, int]]]:
    """The labelled texts and their per-sequence labels. `prompts`: the base model's prompt
    of each problem; `generations`: each model's behaviour records, in problem order."""
    from experiments.pairs.behavior import split_output

    rng = random.Random(f"pair-cache-{seed}")
    models = list(generations)
    out = []
    for i, (p, prompt) in enumerate(zip(problems, prompts)):
        def seq(kind: str, source: int = -1) -> dict[str, int]:
            return {"example": i, "difficulty": len(p.steps), "variant": CACHE_TEXTS.index(kind), "source": source,
                    "answerable": int(p.answerable)}

        for kind in kinds:
            if kind in ("gold", "mistake"):
                if not p.answerable:  # no gold answer to write; its generated texts are cached
                    continue
                steps = list(p.steps)
                if kind == "mistake":
                    numbered = [j for j, s in enumerate(steps) if any(c.isdigit() for c in s)]
                    if not numbered:
                        continue
                    steps = insert_mistake(steps, rng.choice(numbered), rng.randrange(1 << 30))
                t = Labelled()
                t.add(prompt, ROLE_QUESTION)
                t.add_cot(render_cot(steps, None, task), steps)
                t.add(f"{task.answer_prefix} {p.answer}.", ROLE_ANSWER)
                out.append((t, seq(kind)))
            else:
                for m, name in enumerate(models):
                    g = generations[name][i]
                    cot, steps = split_output(g["output"], task)
                    t = Labelled()
                    t.add(prompt, ROLE_QUESTION)
                    t.add_cot(cot, steps)
                    t.add(g["output"][len(cot):], ROLE_ANSWER)
                    out.append((t, seq(kind, m)))
    return out


def _first_visible(text: str, offsets: np.ndarray) -> np.ndarray:
    """(T,) the index of each token's first non-whitespace character (its first character
    when it is all whitespace). Byte-level BPE tokenizers keep the leading space in a word's
    span (" but"), whose label would otherwise be the space's."""
    n = len(text)
    visible = np.array([not c.isspace() for c in text] + [True])
    idx = np.where(visible, np.arange(n + 1), n)
    nxt = np.minimum.accumulate(idx[::-1])[::-1]  # nxt[i]: first non-space index >= i (n if none)
    s = np.clip(offsets[:, 0], 0, max(n - 1, 0))
    e = np.clip(offsets[:, 1], 0, n)
    first = nxt[s]
    return np.where(first < e, first, s)


def token_set(tokenizer, labelled: Sequence[tuple[Labelled, dict[str, int]]], words: Sequence[str]
              ) -> tuple[list[np.ndarray], dict[str, list[np.ndarray]]]:
    """Token ids (one array per sequence) and per-token labels, as `activations.cache.write_cache` takes them."""
    ids_out: list[np.ndarray] = []
    labels: dict[str, list[np.ndarray]] = {n: [] for n in ("role", "step", "word", "value", "rword", *SEQ_LABELS)}
    for t, seq in labelled:
        enc = tokenizer(t.text, return_offsets_mapping=True, return_special_tokens_mask=True)
        ids = np.asarray(enc["input_ids"], np.int64)
        off = np.asarray(enc["offset_mapping"], np.int64).reshape(-1, 2)
        special = np.asarray(enc["special_tokens_mask"], bool)
        text_tok = ~special & (off[:, 1] > off[:, 0])
        start = _first_visible(t.text, off)
        first = np.argmax(text_tok) if text_tok.any() else len(ids)
        roles = np.asarray(t.role, np.int64)
        per_char = {"role": roles, "step": np.asarray(t.step, np.int64), "word": word_labels(t.text, roles, words),
                    "value": np.asarray(t.value, np.int64)}
        for name, arr in per_char.items():
            v = np.where(text_tok, arr[start], UNDEFINED)
            if name == "role":  # specials (and empty-span tokens): question before the text, answer after
                v = np.where(text_tok, v, np.where(np.arange(len(ids)) < first, ROLE_QUESTION, ROLE_ANSWER))
            labels[name].append(v.astype(np.int16))
        labels["rword"].append((labels["word"][-1] >= 0).astype(np.int16))
        for name in SEQ_LABELS:
            labels[name].append(np.full(len(ids), seq[name], np.int32))
        ids_out.append(ids)
    return ids_out, labels


@dataclass(frozen=True)
class SAERows:
    """The cache rows SAEs train (or are evaluated) on: problems with index % every != 0
    (train) or == 0 (held out), position 0 of every sequence left out (the first token's
    massive activations in Llama- and Qwen-type models would dominate the loss). A
    dataclass, so its repr is stable (it keys SAE checkpoints)."""

    every: int
    heldout: bool

    def __call__(self, cols: dict[str, np.ndarray]) -> np.ndarray:
        return ((cols["example"] % self.every == 0) == self.heldout) & (cols["pos"] > 0)
