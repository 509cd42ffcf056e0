"""The `findings` section of a pair config: the literature's four findings on a real model,
each on the models it names (a model of the pair or an entry of the run's `finetune`
section), evaluated on problems no fine-tune trained on (`split`). Every part is off until
it names its model(s), so a pair run without the section measures none of them.

    switch        TIP's thought-switch penalty on a model that switches (`sft-switch`)
    compress      ASC's steering vector from the model's own verbose CoTs and concise gold ones
    format        a task change's new answer format, SFT against DPO on the same few examples
    instruction   fine-tunes on the correct, empty and wrong instruction, and a held-out one
"""

from __future__ import annotations

from dataclasses import dataclass, field

from features.thought_switch import SWITCH_WORDS


@dataclass
class PairSwitchConfig:
    """The thought-switch penalty (TIP, Wang et al. 2025) against its strength."""

    model: str | None = None
    """The model that switches (e.g. a `sft-switch` fine-tune); None: not measured."""
    control: str | None = None
    """A model that does not switch, whose accuracy the penalty should leave alone."""
    strengths: list[float] = field(default_factory=lambda: [0.0, 4.0, 8.0])
    """Penalty strengths (logits subtracted); 0 (no penalty) is the reference and must be one."""
    duration: int = 64
    """Tokens from each thought's start during which switching is penalised."""
    temperature: float = 0.7
    """Sampling temperature (a switch is a sampled choice)."""
    words: list[str] = field(default_factory=lambda: list(SWITCH_WORDS))
    """The switch words: their first tokens are penalised and their presence counts a switch."""
    n: int = 32
    """Problems sampled at every strength (the same problems and seed at each)."""
    max_new_tokens: int = 160
    """Tokens per CoT (a switched CoT writes part of the chain, then all of it again)."""

    def __post_init__(self):
        if 0.0 not in self.strengths or any(s < 0 for s in self.strengths):
            raise ValueError("findings.switch.strengths must include 0 (no penalty) and be >= 0")
        if self.duration < 1 or self.temperature <= 0 or self.n < 1 or not self.words:
            raise ValueError("findings.switch needs duration >= 1, temperature > 0, n >= 1 and a switch word")


@dataclass
class PairCompressConfig:
    """Activation-steered compression (ASC, Azizi et al. 2025) on the model's own CoTs."""

    model: str | None = None
    """The model whose CoTs are compressed; None: not measured."""
    pairs: int = 48
    """Problems whose greedy CoTs are tried as the verbose side of a pair (kept when right
    and at least `min_ratio` times the concise gold CoT's tokens)."""
    min_ratio: float = 1.5
    """A verbose CoT has at least this many times the concise CoT's tokens."""
    layers: list[int] = field(default_factory=lambda: [10, 20])
    """Candidate layers of the vector (`blocks.L.hook_resid_post`), chosen on `select_n` problems."""
    scales: list[float] = field(default_factory=lambda: [2.0, 4.0, 8.0])
    """Candidate steering scales (multiples of the vector), chosen with the layer."""
    steer_at: str = "last"
    """Where the vector is added: last (the positions that choose a token, as the paper) or all."""
    max_accuracy_drop: float = 0.05
    """The selection keeps the (layer, scale) that cuts the most with accuracy on the
    selection problems at most this much below no steering's."""
    select_n: int = 16
    """Selection problems (other than the pairs' and the held-out ones)."""
    n: int = 32
    """Held-out problems: no steering, the chosen vector and a random direction of its norm."""
    timing_n: int = 8
    """Problems timed one at a time (steered and not, interleaved) for the speed-up."""
    max_new_tokens: int = 160
    """Tokens per CoT."""

    def __post_init__(self):
        if self.steer_at not in ("last", "all"):
            raise ValueError(f"findings.compress.steer_at must be last or all, got {self.steer_at!r}")
        if not self.layers or not self.scales or min(self.layers) < 0 or min(self.scales) <= 0:
            raise ValueError("findings.compress needs layers >= 0 and scales > 0")
        if min(self.pairs, self.select_n, self.n, self.timing_n) < 1 or self.min_ratio < 1:
            raise ValueError("findings.compress needs pairs, select_n, n, timing_n >= 1 and min_ratio >= 1")


@dataclass
class PairFormatConfig:
    """A task change with a new answer format (Manduzio et al. 2024): SFT against DPO."""

    sft: str | None = None
    """The SFT fine-tune on the change's few examples (`sft-format`); None: not measured."""
    dpo: str | None = None
    """The DPO fine-tune on the same examples (`dpo-format`)."""
    floor: str | None = None
    """The model both started from (its new-format rate is the floor)."""
    n: int = 32
    """New problems asked for format B."""
    max_new_tokens: int = 128
    """Tokens per output."""

    def __post_init__(self):
        if (self.sft is None) != (self.dpo is None):
            raise ValueError("findings.format needs both sft and dpo (or neither)")
        if self.n < 1:
            raise ValueError("findings.format.n must be >= 1")


@dataclass
class PairInstructionConfig:
    """Instruction tuning with correct, empty and wrong instructions (Kung & Peng 2023)."""

    correct: str | None = None
    """The fine-tune on the correct instruction; None: not measured."""
    empty: str | None = None
    """The same recipe with no instruction."""
    wrong: str | None = None
    """The same recipe with a wrong instruction."""
    floor: str | None = None
    """The model all three started from (how well it follows the held-out instruction untuned)."""
    n: int = 32
    """New problems per instruction."""
    max_new_tokens: int = 128
    """Tokens per output."""

    def __post_init__(self):
        named = [x is None for x in (self.correct, self.empty, self.wrong)]
        if any(named) and not all(named):
            raise ValueError("findings.instruction needs correct, empty and wrong (or none of them)")
        if self.n < 1:
            raise ValueError("findings.instruction.n must be >= 1")

    def models(self) -> dict[str, str]:
        """{instruction trained: model}, the floor as `floor`."""
        out = {"correct": self.correct, "empty": self.empty, "wrong": self.wrong, "floor": self.floor}
        return {k: v for k, v in out.items() if v is not None}


@dataclass
class PairFindingsConfig:
    """The four findings on a real model (each off until it names its models)."""

    split: str = "eval"
    """The task's split the findings are evaluated on (problems no fine-tune trained on)."""
    batch_size: int = 16
    """Prompts per generation batch."""
    switch: PairSwitchConfig = field(default_factory=PairSwitchConfig)
    """TIP."""
    compress: PairCompressConfig = field(default_factory=PairCompressConfig)
    """ASC."""
    format: PairFormatConfig = field(default_factory=PairFormatConfig)
    """DPO against SFT on a new format."""
    instruction: PairInstructionConfig = field(default_factory=PairInstructionConfig)
    """Correct, empty and wrong instructions."""

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError("findings.batch_size must be >= 1")

    def parts(self) -> list[str]:
        """The findings this config measures, in order."""
        on = {"switch": self.switch.model, "compress": self.compress.model, "format": self.format.sft,
              "instruction": self.instruction.correct}
        return [k for k, v in on.items() if v is not None]

    def models(self) -> list[str]:
        """Every model some finding runs on."""
        names = [self.switch.model, self.switch.control, self.compress.model, self.format.sft, self.format.dpo,
                 self.format.floor, *self.instruction.models().values()]
        return list(dict.fromkeys(n for n in names if n is not None))
