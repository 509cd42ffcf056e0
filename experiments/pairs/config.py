"""The config of a model-pair run: one YAML file with a `models` section (a base and its
fine-tuned variants, each an HF id or a local folder) and a text task, instead of the
organisms' `organisms` and `task` sections. See `experiments/configs/pair-tiny.yaml`
(CPU, tiny random-weight checkpoints) and `experiments/configs/pair-*.yaml` (GPU nodes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from activations.cache import CacheWriteConfig
from activations.models import ModelSpec
from experiments.finetune.train import FinetuneConfig
from experiments.pairs.findings.config import PairFindingsConfig
from experiments.tasks.text import REASONING_WORDS, TextTaskConfig
from experiments.stages.sae_config import PairSAEConfig

CacheText = Literal["gold", "mistake", "generated"]
AnswerMode = Literal["forced", "stated"]
CACHE_TEXTS = get_args(CacheText)


@dataclass
class PairModels:
    """The models of a pair run. They must share one tokenizer (checked before anything runs)."""

    base: ModelSpec
    """The base model."""
    variants: dict[str, ModelSpec]
    """Fine-tuned variants by name (e.g. instruct: {path: Qwen/Qwen2.5-0.5B-Instruct})."""

    def __post_init__(self):
        if not self.variants:
            raise ValueError("models.variants must name at least one fine-tuned model")
        if "base" in self.variants:
            raise ValueError("models.variants: 'base' is the base model's name; call the variant something else")

    def named(self) -> dict[str, ModelSpec]:
        return {"base": self.base, **self.variants}


@dataclass
class PairBehaviorConfig:
    """The behavioural suite on text."""

    max_new_tokens: int = 256
    """Tokens generated per chain of thought (greedy). A CoT still running then has no answer."""
    answer_tokens: int = 12
    """Tokens generated after the answer prefix when an answer is forced (faithfulness tests)."""
    batch_size: int = 16
    """Prompts per generation batch."""
    max_cuts: int = 8
    """Early-answering cuts and mistake steps per CoT at most (evenly spread over its steps)."""
    answer: AnswerMode = "forced"
    """How a CoT's answer is read: forced (the CoT up to its first answer marker, or all of
    it, then the answer prefix appended and the answer read from `answer_tokens` forced
    tokens: accuracy does not depend on the model copying a format) or stated (the answer
    the output itself states after a marker; none when it states none)."""
    max_steps: int | None = None
    """Keep at most this many steps of each generated CoT before forcing its answer (a step
    budget); None: all of them."""
    paraphrase: str | None = None
    """How steps are paraphrased: a JSON file {step: paraphrase}, or `module:function` (a
    function str -> str). None: the paraphrase test is skipped (and reported as such)."""

    def __post_init__(self):
        for name in ("max_new_tokens", "answer_tokens", "batch_size", "max_cuts"):
            if getattr(self, name) < 1:
                raise ValueError(f"behavior.{name} must be >= 1, got {getattr(self, name)}")
        if self.answer not in get_args(AnswerMode):
            raise ValueError(f"behavior.answer must be forced or stated, got {self.answer!r}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"behavior.max_steps must be >= 1 or null, got {self.max_steps}")


@dataclass
class PairCacheConfig:
    """The token set every model of the pair is cached on (the same token ids for all)."""

    texts: list[CacheText] = field(default_factory=lambda: list(CACHE_TEXTS))
    """Texts per problem: gold (the gold CoT and answer), mistake (one number of a gold step
    changed), generated (each model's own CoT from the behaviour stage, read by every model)."""
    write: CacheWriteConfig = field(default_factory=lambda: CacheWriteConfig(shard_sequences=64, batch_size=16))
    """Hooks, dtype (bfloat16 / float16 bits on GPU), sharding."""
    words: list[str] = field(default_factory=lambda: list(REASONING_WORDS))
    """Reasoning words labelled in the caches: ReasonScore's anchors (their tokens inside CoTs)
    and groups (default: Galichin et al.'s list)."""

    def __post_init__(self):
        bad = sorted(set(self.texts) - set(CACHE_TEXTS))
        if bad or not self.texts:
            raise ValueError(f"cache.texts must be a non-empty subset of {list(CACHE_TEXTS)}, got {bad}")
        if not self.words:
            raise ValueError("cache.words must name at least one reasoning word")


@dataclass
class PairFeaturesConfig:
    """ReasonScore on text (on the words `cache.words` labels), causal checks in the base,
    steering of each variant."""

    window_left: int = 1
    """Tokens before each reasoning-word token that also count as reasoning."""
    window_right: int = 2
    """Tokens after it that also count."""
    alpha: float = 0.7
    """ReasonScore's entropy exponent."""
    top: int = 8
    """Latents chosen (highest ReasonScore), ablated in the base and steered in the variants."""
    steer_sae: str = "base"
    """The model whose SAE (and ReasonScore latents) steers each variant."""
    strengths: list[float] = field(default_factory=lambda: [1.0, 4.0])
    """Clamp values, as multiples of each latent's maximum activation on the cache."""

    def __post_init__(self):
        if self.top < 1 or not self.strengths:
            raise ValueError("features.top must be >= 1 and features.strengths non-empty")


@dataclass
class PairFinetune(FinetuneConfig):
    """One model the finetune stage makes (into finetuned/<name>/; a model of the pair whose
    path is `finetune:<name>` is it)."""

    start: str = ""
    """The model it starts from: a model folder or HF id, or the name of an earlier entry of
    the finetune section (a fine-tune of a fine-tune)."""

    def __post_init__(self):
        super().__post_init__()
        if not self.start:
            raise ValueError("finetune: every entry needs start (a model folder, HF id or earlier entry)")


FINETUNED = "finetune:"
"""The path prefix of a model the run's finetune stage makes."""


@dataclass
class PairRunConfig:
    """Everything a model-pair run needs to rebuild the same outputs."""

    models: PairModels
    """The base model and its fine-tuned variants."""
    seed: int = 0
    """Seeds every generator (mistakes, SAE initialisation and data order, random controls)."""
    device: str = "cpu"
    """Torch device of every model and SAE (under torchrun on GPUs: each rank's own GPU)."""
    threads: int = 0
    """CPU threads for torch (0 = torch's default)."""
    task: TextTaskConfig = field(default_factory=TextTaskConfig)
    """The text chain-of-thought task (default: the problems shipped with saelab)."""
    behavior: PairBehaviorConfig = field(default_factory=PairBehaviorConfig)
    """Accuracy, abstention, CoT length, faithfulness tests, InfoGain."""
    cache: PairCacheConfig = field(default_factory=PairCacheConfig)
    """The activation caches."""
    sae: PairSAEConfig = field(default_factory=PairSAEConfig)
    """The SAEs."""
    features: PairFeaturesConfig = field(default_factory=PairFeaturesConfig)
    """Reasoning latents and steering."""
    finetune: dict[str, PairFinetune] = field(default_factory=dict)
    """Models the run makes first, by name, with the lab's fine-tuning recipes (TRL, LoRA
    merged): e.g. {cot: {start: models/smollm2-135m-instruct, recipe: sft-cot}, noisy:
    {start: cot, recipe: sft-noisy-trace}}; a model path `finetune:cot` is the first."""
    finetune_limit: int | None = None
    """The fine-tunes train on the task's problems with `task.limit` replaced by this (None:
    no limit; each entry then takes its first `problems`)."""
    findings: PairFindingsConfig = field(default_factory=PairFindingsConfig)
    """The literature's findings on a real model (TIP, ASC, DPO against SFT, instructions),
    each on models of the pair or fine-tunes of the run; off until they are named."""

    def __post_init__(self):
        from experiments.config import check_device

        check_device(self.device)
        names = list(self.models.named())
        self.sae.check_models(names)
        if self.features.steer_sae not in names:
            raise ValueError(f"features.steer_sae {self.features.steer_sae!r} is not a model of this run; use one of {names}")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0, got {self.threads}")
        done: list[str] = []
        for name, entry in self.finetune.items():  # an entry starts from a model or an earlier entry
            if entry.start in self.finetune and entry.start not in done:
                raise ValueError(f"finetune.{name}: start {entry.start!r} is a later entry (or itself); list it first")
            done.append(name)
        for name, spec in self.models.named().items():
            if spec.path.startswith(FINETUNED) and spec.path[len(FINETUNED):] not in self.finetune:
                raise ValueError(f"models.{name}: {spec.path!r} names no entry of the finetune section "
                                 f"({', '.join(self.finetune) or 'empty'})")

        known = set(names) | set(self.finetune)
        for model in self.findings.models():
            if model not in known and "/" not in model:
                raise ValueError(f"findings: {model!r} is neither a model of this run nor an entry of its finetune "
                                 f"section; use one of {sorted(known)}, or a model folder or HF id")
        if self.findings.parts() and self.task.generate is None:
            raise ValueError("findings need generated problems (task.generate): they read each problem's typed steps")

    def finding_spec(self, name: str, run) -> ModelSpec:
        """The spec of a model a finding names: a model of the pair, an entry of the
        finetune section (its folder in `run`), or a model folder or HF id."""
        if name in self.models.named():
            return self.spec(name, run)
        if name in self.finetune:
            return ModelSpec(path=str(run.finetuned(name)), device=self.device)
        return ModelSpec(path=name, device=self.device)

    def finetune_task(self) -> TextTaskConfig:
        """The task the fine-tunes train on: the run's, without its evaluation limit."""
        import dataclasses

        return dataclasses.replace(self.task, limit=self.finetune_limit, few_shot=0)

    def model_names(self) -> list[str]:
        return list(self.models.named())

    def spec(self, name: str, run=None) -> ModelSpec:
        """Model `name`'s spec: on its own device if it names one, else on the run's ("cuda"
        under torchrun is each rank's own GPU, which `init_distributed` made current). A
        `finetune:NAME` path is the run's finetuned/NAME folder (`run`: its RunDir)."""
        import dataclasses

        spec = self.models.named()[name]
        spec = dataclasses.replace(spec, device=spec.device or self.device)
        if spec.path.startswith(FINETUNED):
            if run is None:
                raise ValueError(f"model {name} ({spec.path}) is made by a run's finetune stage; give the run")
            spec = dataclasses.replace(spec, path=str(run.finetuned(spec.path[len(FINETUNED):])))
        return spec
