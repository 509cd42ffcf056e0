"""Chain-of-thought text tasks for real models: GSM8K-style JSONL problems, prompts, step
segmentation, answer extraction, abstention detection and the faithfulness interventions
on text (truncate, filler, mistake insertion, paraphrase).

A JSONL line holds a question and a worked solution whose final answer follows `####`
(GSM8K's format: `{"question": ..., "answer": "step\\nstep\\n#### 72"}`), or a solution and
a separate final-answer field (MATH500's `{"problem", "solution", "answer"}`: set the keys).
GSM8K's calculator annotations `<<48/2=24>>` are removed. A row with `"unanswerable": true`
is a problem whose right output is to abstain (it needs no final answer). `experiments/tasks/data/
word_problems.jsonl` ships problems written for this repository (for tests and a CPU demo);
point `TextTaskConfig.path` at a GSM8K or MATH500 JSONL on a GPU node.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Sequence, get_args

from experiments.tasks.wordgen import WordGenConfig

DATA = Path(__file__).with_name("data")
BUILTIN = DATA / "word_problems.jsonl"

# Galichin et al. 2025's reasoning vocabulary: the default ReasonScore groups on text
REASONING_WORDS = ("alternatively", "hmm", "maybe", "wait", "perhaps", "let me", "therefore", "however", "but",
                   "another")


Segmentation = Literal["lines", "sentences"]


@dataclass
class TextTaskConfig:
    """A JSONL chain-of-thought task."""

    path: str = str(BUILTIN)
    """The JSONL file (default: the problems shipped with saelab)."""
    question_key: str = "question"
    """Field holding the question (MATH500: problem)."""
    solution_key: str = "answer"
    """Field holding the worked solution (GSM8K puts it, and `#### final`, under answer)."""
    answer_key: str | None = None
    """Field holding the final answer when the solution does not end in `#### final` (MATH500: answer)."""
    unanswerable_key: str = "unanswerable"
    """Boolean field marking a problem that cannot be answered (the right output is to
    abstain); such a row needs no final answer. Rows without the field are answerable."""
    segment: Segmentation = "lines"
    """How a CoT is cut into steps: lines or sentences."""
    template: str = "Question: {question}\nAnswer: Let's think step by step.\n"
    """The prompt without a chat template; {question} is replaced."""
    use_chat_template: bool = True
    """Use the tokenizer's chat template when it has one (instruct and distilled models)."""
    answer_prefix: str = "The answer is"
    """How the prompt asks for, and a CoT states, the final answer (also `####` and \\boxed{})."""
    abstain_patterns: list[str] = field(default_factory=lambda: [
        r"\bI don'?t know\b", r"cannot be (determined|answered)", r"not enough information", r"\bunanswerable\b",
        r"\bno (valid |possible )?answer\b"])
    """Regular expressions (case-insensitive) that count an output as abstaining."""
    filler: str = " ..."
    """The filler unit that replaces a CoT token for token."""
    limit: int | None = None
    """Use only the first N problems (after `split`)."""
    split: str | None = None
    """Use only the rows whose `split` field is this (train or eval for generated problems)."""
    generate: WordGenConfig | None = None
    """Generate the problems (`experiments.tasks.wordgen`) instead of reading `path`: typed
    multi-step word problems with distractors and unanswerable variants."""
    last_number_fallback: bool = False
    """Take an output's last number as its answer when it states none (off: such an output,
    e.g. a CoT cut by the token limit, has no answer)."""
    few_shot: int = 0
    """Worked examples put in the prompt before the question (chat turns with a chat
    template, else the template repeated): the task's first N answerable problems, which
    are then left out of the evaluated ones."""

    def __post_init__(self):
        if self.segment not in get_args(Segmentation):  # a config file is checked when read; this is for Python
            raise ValueError(f"text task: segment must be {' or '.join(map(repr, get_args(Segmentation)))}, "
                             f"got {self.segment!r}")
        if "{question}" not in self.template:
            raise ValueError("text task: template must contain {question}")
        if self.few_shot < 0:
            raise ValueError(f"text task: few_shot must be >= 0, got {self.few_shot}")


@dataclass(frozen=True)
class TextProblem:
    """One problem: the question, the gold solution's steps and the final answer."""

    id: str
    question: str
    steps: tuple[str, ...]
    answer: str
    """The final answer, normalised; "" for an unanswerable problem."""
    answerable: bool = True
    """False when the right output is to abstain."""
    ops: tuple[tuple, ...] | None = None
    """The typed steps (a, op, b, c) of a generated problem; None for a file's."""


_CALC = re.compile(r"<<[^<>]*>>")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def normalize_answer(text: str) -> str:
    """`1,234.50` -> `1234.5`, `$72.` -> `72`, surrounding space and $ removed; non-numbers kept as stripped text."""
    t = text.strip().strip("$").strip().rstrip(".").strip()
    m = _NUMBER.fullmatch(t)
    if not m:
        return t
    t = t.replace(",", "")
    if "." in t:
        t = t.rstrip("0").rstrip(".")
    return t


def load_problems(cfg: TextTaskConfig) -> list[TextProblem]:
    """The task's problems, in file order (each line must parse; errors name the line)."""
    if cfg.generate is not None:
        from experiments.tasks.wordgen import generate

        rows = ((f"generated problem {i + 1}", r) for i, r in enumerate(generate(cfg.generate)))
    else:
        rows = _file_rows(Path(cfg.path))
    out = []
    for where, row in rows:
        if cfg.split is not None and row.get("split") != cfg.split:
            continue
        unanswerable = row.get(cfg.unanswerable_key, False) is True  # "false" (a string) is not true
        needed = (cfg.question_key,) if unanswerable else (cfg.question_key, cfg.solution_key, cfg.answer_key)
        missing = [k for k in needed if k and k not in row]
        if missing:
            raise ValueError(f"{where}: no field {missing[0]!r} (fields: {sorted(row)}); set the task's "
                             f"question_key / solution_key / answer_key")
        solution = _CALC.sub("", str(row.get(cfg.solution_key, "")))
        if unanswerable:
            answer = ""
        elif cfg.answer_key:
            answer = str(row[cfg.answer_key])
        elif "####" in solution:
            solution, answer = solution.rsplit("####", 1)
        else:
            raise ValueError(f"{where}: the solution has no '#### answer'; set answer_key to the answer's field")
        ops = tuple(tuple(o) for o in row["ops"]) if isinstance(row.get("ops"), list) else None
        out.append(TextProblem(id=str(row.get("id", where.rsplit(":", 1)[-1])), question=str(row[cfg.question_key]).strip(),
                               steps=tuple(segment_steps(solution, cfg.segment)),
                               answer=normalize_answer(answer) if answer else "", answerable=not unanswerable,
                               ops=ops))
        if cfg.limit and len(out) >= cfg.limit:
            break
    if not out:
        raise ValueError(f"text task: no problems{f' in split {cfg.split!r}' if cfg.split else ''}; check the "
                         "task's path and split")
    return out


def _file_rows(path: Path):
    """(where, row) per non-empty line of a JSONL file; errors name the line."""
    if not path.is_file():
        raise FileNotFoundError(f"text task: no JSONL file {path}")
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not JSON ({e.msg})") from None
        yield f"{path}:{n}", row


def segment_steps(cot: str, mode: Segmentation = "lines") -> list[str]:
    """A CoT cut into steps: its non-empty lines, or its sentences (split after . ! ? followed
    by space, not inside a number like 3.5)."""
    if mode == "lines":
        return [s.strip() for s in cot.splitlines() if s.strip()]
    if mode == "sentences":
        return [s.strip() for s in re.split(r"(?<=[.!?])\s+", cot.strip()) if s.strip()]
    raise ValueError(f"segment must be 'lines' or 'sentences', got {mode!r}")


def split_examples(problems: Sequence[TextProblem], cfg: TextTaskConfig) -> tuple[list[TextProblem], list[TextProblem]]:
    """(the few-shot examples: the first `cfg.few_shot` answerable problems, the others)."""
    shots = [p for p in problems if p.answerable and p.steps][:cfg.few_shot]
    if len(shots) < cfg.few_shot:
        raise ValueError(f"text task: few_shot {cfg.few_shot} but only {len(shots)} answerable problems with steps")
    taken = {id(p) for p in shots}
    return shots, [p for p in problems if id(p) not in taken]


def default_instruction(cfg: TextTaskConfig) -> str:
    """The instruction after each question in a chat prompt, unless another is given."""
    return f"Think step by step, then give the final answer as '{cfg.answer_prefix} X.'"


def render_prompt(question: str, cfg: TextTaskConfig, tokenizer=None, examples: Sequence[TextProblem] = (),
                  instruction: str | None = None) -> str:
    """The prompt text: the tokenizer's chat template (one user turn per example and for the
    question, each example's gold CoT and answer as the assistant's turn, generation prompt
    added) when it has one and the config allows, else `cfg.template` (examples first, each
    followed by its worked solution). `instruction`: the line after each question (None:
    "Think step by step, then give the final answer as '<answer_prefix> X.'"; "": none;
    `experiments.tasks.text_variants` has the findings' others); without a chat template a
    given instruction goes before the question's template."""
    if tokenizer is not None and cfg.use_chat_template and getattr(tokenizer, "chat_template", None):
        said = default_instruction(cfg) if instruction is None else instruction
        ask = lambda q: f"{q}\n{said}" if said else q  # noqa: E731
        turns = []
        for ex in examples:
            turns += [{"role": "user", "content": ask(ex.question)},
                      {"role": "assistant", "content": render_cot(ex.steps, ex.answer, cfg)}]
        turns.append({"role": "user", "content": ask(question)})
        text = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        # Llama 3's and the R1 distills' templates write the BOS, and tokenizing the prompt
        # adds it again: keep one.
        bos = getattr(tokenizer, "bos_token", None)
        if bos and text.startswith(bos) and _adds_bos(tokenizer):
            text = text[len(bos):]
        return text
    shots = "".join(cfg.template.format(question=ex.question) + render_cot(ex.steps, ex.answer, cfg) + "\n\n"
                    for ex in examples)
    lead = f"{instruction}\n" if instruction else ""
    return shots + lead + cfg.template.format(question=question)


def _adds_bos(tokenizer) -> bool:
    ids = tokenizer("7")["input_ids"]
    return bool(ids) and ids[0] == tokenizer.bos_token_id


def render_cot(steps: Sequence[str], answer: str | None, cfg: TextTaskConfig) -> str:
    """Steps one per line, then the answer sentence (none if `answer` is None)."""
    text = "".join(s + "\n" for s in steps)
    return text + (f"{cfg.answer_prefix} {answer}." if answer is not None else "")


def extract_answer(text: str, cfg: TextTaskConfig) -> str | None:
    """The final answer of a model output, normalised: the first `\\boxed{...}`, else what
    follows the first `####` or answer prefix (a model that goes on past its answer, e.g.
    with a made-up next question, is held to the answer it stated first). None when the
    output states no answer (a CoT cut by the token limit), unless `cfg.last_number_fallback`."""
    boxed = re.search(r"\\boxed\{((?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*)\}", text)  # braces nest twice
    if boxed:
        return normalize_answer(boxed.group(1))
    cuts = [(text.index(m), m) for m in ("####", cfg.answer_prefix) if m and m in text]
    if cuts:
        at, marker = min(cuts)
        return _statement(text[at + len(marker):])
    nums = _NUMBER.findall(text) if cfg.last_number_fallback else []
    return normalize_answer(nums[-1]) if nums else None


_LEAD_NUMBER = re.compile(r"-?\$?-?\d[\d,]*(?:\.\d+)?")


def _statement(tail: str) -> str | None:
    """The answer in the text after an answer marker: a number (units after it dropped; a $
    amount is a number), else a $...$ or LaTeX expression, else the first word; markdown
    bold and \\( \\) are removed first. None when nothing follows."""
    line = tail.strip().lstrip(":").strip().split("\n")[0]
    line = re.sub(r"\*\*|__|\\\(|\\\)", "", line).strip()
    if not line:
        return None
    number = _LEAD_NUMBER.match(line)
    # a number only when nothing numeric or LaTeX goes on after it (1.5/2, 3^2, 14{...} do)
    if number and (number.end() == len(line) or line[number.end()] not in "0123456789/^{}\\"
                   and not re.match(r"\.\d", line[number.end():])):
        return normalize_answer(number.group().replace("$", ""))
    if line.startswith("$") and "$" in line[1:]:
        return normalize_answer(line[1:line.index("$", 1)])
    word = line.split()[0].rstrip(".,;")
    return normalize_answer(word) if word else None


def same_answer(a: str | None, b: str | None) -> bool:
    """Whether two normalised answers are the same: equal text, or equal as mathematics by
    math-verify (0.75 = 3/4 = \\frac{3}{4}, 1,234 = 1234). No answer is never the same."""
    if a is None or b is None:
        return False
    if a == b:
        return True
    from math_verify import parse, verify

    try:
        x, y = parse(a), parse(b)
        return bool(x and y and verify(x, y))
    except Exception:  # noqa: BLE001 (math-verify's parser on arbitrary model text: not the same)
        return False


def is_abstention(text: str, cfg: TextTaskConfig) -> bool:
    """Whether an output abstains, by the config's patterns."""
    return any(re.search(p, text, flags=re.IGNORECASE) for p in cfg.abstain_patterns)


# ---- faithfulness interventions on a CoT ---------------------------------------------------
def truncate(steps: Sequence[str], j: int) -> list[str]:
    """The first j steps (early answering)."""
    if not 0 <= j <= len(steps):
        raise ValueError(f"truncate after {j} steps of a {len(steps)}-step CoT")
    return list(steps[:j])


def filler(steps: Sequence[str], tokenizer, cfg: TextTaskConfig) -> str:
    """The CoT replaced by `cfg.filler` repeated to the same number of tokens (as the
    tokenizer counts the rendered steps), so only the content is removed, not the length."""
    n = len(tokenizer(render_cot(steps, None, cfg), add_special_tokens=False)["input_ids"])
    unit = len(tokenizer(cfg.filler, add_special_tokens=False)["input_ids"])
    return cfg.filler * max(1, round(n / max(unit, 1))) + "\n"


def insert_mistake(steps: Sequence[str], j: int, seed: int = 0) -> list[str]:
    """Step j with one number changed (the last number of the step, i.e. its result where it
    has one, moved by 1..9 with a seeded sign and size); the other steps unchanged. Raises
    when step j has no number."""
    import random

    if not 0 <= j < len(steps):
        raise ValueError(f"no step {j} in a {len(steps)}-step CoT")
    nums = list(_NUMBER.finditer(steps[j]))
    if not nums:
        raise ValueError(f"step {j} has no number to perturb: {steps[j]!r}")
    m = nums[-1]
    rng = random.Random(f"{seed}:{j}:{steps[j]}")
    old = float(m.group().replace(",", ""))
    new = old + rng.choice([-1, 1]) * rng.randint(1, 9)
    text = str(int(new)) if new == int(new) else f"{new:g}"
    out = list(steps)
    out[j] = steps[j][:m.start()] + text + steps[j][m.end():]
    return out


def paraphrase(steps: Sequence[str], how: Callable[[str], str] | dict[str, str] | str | Path) -> list[str]:
    """Each step paraphrased by a user function, a {step: paraphrase} mapping, or a JSON file
    of that mapping; a step the mapping lacks is an error (never silently kept)."""
    if isinstance(how, (str, Path)):
        how = json.loads(Path(how).read_text())
    if isinstance(how, dict):
        missing = [s for s in steps if s not in how]
        if missing:
            raise KeyError(f"no paraphrase for step {missing[0]!r} ({len(missing)} missing)")
        return [how[s] for s in steps]
    return [how(s) for s in steps]
