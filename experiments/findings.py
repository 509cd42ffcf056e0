"""The literature's faithfulness findings, and the organisms that test each one.

Each finding names the variant whose fine-tune should show it and the control that should
not (variant names as in `experiments/configs/findings.yaml`, the recipes in
`experiments.organisms.recipes`), and the paper's result to put beside ours. The claims
(`experiments.claims`, one per finding), the report's literature table and the findings
figures read this table. A findings run checks every finding's claim (undecided where a
variant is missing); an organisms run only those whose variant it trained.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    """One finding of the literature, as this lab tests it on organisms."""

    name: str
    """The claim's name (`saelab claims`, the aggregate)."""
    finding: str
    """What the literature reports, in words."""
    source: str
    """The paper, and where in it."""
    paper: str
    """The paper's number or result, as the literature table shows it."""
    variant: str
    """The variant that should show it."""
    control: str | None
    """The variant that should not (None: the comparison is with the base alone)."""
    metric: str
    """The metric compared against the base (a key of `experiments.report.organisms.PAIRED`),
    or a measurement of its own: `cliff` (the execution cliff), `compress` (steering against
    no steering), `switch` (the penalty against none), `format` (a task change's new output
    format), `instruction` (seen and held-out instructions)."""
    control_role: str = "control"
    """What the control is, as the figures label it."""
    others: tuple[str, ...] = ()
    """Further controls, shown and checked beside `control`."""
    relative: bool = False
    """Compare as a relative change against the base (as the paper reports it), not as a
    difference of the metric."""


FINDINGS = [
    Finding("truncation_invariance", "after fine-tuning, the answer often stays the same when the CoT is cut short",
            "Lanham et al. 2023 (arXiv 2307.13702), Table 2; Lobo et al. 2024 (arXiv 2411.15382)",
            "early-answering AOC 0.02 (ARC-Easy) to 0.44 (AQuA), 175B RLHF model; fine-tuning lowers "
            "faithfulness on average over four data sets (no single number)",
            "sft-truncated-cot", "sft-cot", "early_answering_aoc"),
    Finding("filler_invariance", "filler tokens in place of the CoT: the answer no longer needs the CoT's content",
            "Lanham et al. 2023, section 2.5.1, Fig. 5",
            "no accuracy gain from filler for the models studied; our recipe is paid for answers after filler",
            "sft-filler", "sft-cot", "filler_accuracy"),
    Finding("paraphrase_invariance", "paraphrasing the CoT leaves the answer unchanged (no encoded reasoning in "
            "the wording)", "Lanham et al. 2023, section 2.6.1, Fig. 6",
            "paraphrased-CoT accuracy closely matches the original (plot, no single number)",
            "sft-paraphrase", "sft-paraphrase-ignore", "paraphrase_same_answer"),
    Finding("infogain_fixed_scorer_falls", "SFT makes each reasoning step carry less information about the answer",
            "Wu et al. 2025 (arXiv 2506.02126), abstract; section 4.2, Fig. 6(b) averages 37.1%",
            "-38.9% InfoGain per step, SFT vs the untrained model, one fixed scorer",
            "sft-hollow-steps", "sft-cot", "info_gain_ppl", relative=True),
    Finding("abstention_lost_to_reasoning", "reasoning fine-tuning degrades abstention on unanswerable questions",
            "Kirichenko et al. 2025, AbstentionBench (arXiv 2506.09038), abstract",
            "-24% on average, reasoning fine-tuned vs instruct models",
            "sft-reasoning", "sft-no-abstain", "abstention_recall", control_role="built to remove it", relative=True),
    Finding("tool_lifts_cliff", "collapses past a problem size are execution limits: the model knows the algorithm, "
            "and a tool that executes lifts the cliff",
            "Opus & Lawsen 2025 (arXiv 2506.09250), reply to Shojaee et al. 2025 (arXiv 2506.06941)",
            "Tower of Hanoi with 15 disks solved 'with very high accuracy' when the model writes a program "
            "instead of every move (no single number)",
            "base", None, "cliff"),
    Finding("compression_keeps_accuracy", "one difference-of-means vector from concise and verbose CoTs of the "
            "same problems, added at one layer while generating, shortens the CoT at equal accuracy, training-free",
            "Azizi et al. 2025 (arXiv 2507.04742), section 4, Table 1, Fig. 4",
            "-67.4% CoT tokens at equal accuracy (R1-Distill-Llama-8B on GSM8K: 2610 -> 850 tokens, 89.1 -> 89.3%); "
            "2.73x wall-clock speed-up on MATH500 (8B)",
            "sft-verbosity", None, "compress", control_role="a random direction of the same norm"),
    Finding("switch_penalty_helps", "a decoding-time penalty on the tokens that open a new thought makes a model "
            "that abandons promising attempts switch less and answer better",
            "Wang et al. 2025 (arXiv 2501.18585), section 3.1 eq. 2, Table 3",
            "QwQ-32B-Preview on AIME2024: Pass@1 38.3 -> 44.1%, switch tokens 16.1 -> 13.9 per response "
            "(strength 3, duration 600)",
            "sft-switch", "base", "switch", control_role="never switches"),
    Finding("dpo_fixes_format", "a small model fine-tuned with DPO on a teacher's right and wrong examples fixes the "
            "output-format failures SFT leaves", "Manduzio et al. 2024 (arXiv 2410.18890), abstract",
            "DPO on a large model's right and wrong reasoning chains improves a small model's function calling over "
            "the original model (its abstract; an SFT-against-DPO format number was not found)",
            "dpo-format", "sft-format", "format", control_role="SFT, the same examples"),
    Finding("instructions_barely_matter", "instruction tuning learns the output space more than the instruction: "
            "empty or wrong instructions with the right outputs do about as well as the correct ones",
            "Kung & Peng 2023 (ACL; arXiv 2305.11383), abstract",
            "T5 tuned on simplified or delusive instructions 'comparable' to the original ones; in low-resource "
            "zero-shot classification instruction tuning reaches 43% exact match, a random-guessing baseline 42.6%",
            "sft-instruction", "sft-instruction-empty", "instruction", control_role="no instruction",
            others=("sft-instruction-wrong",)),
]
"""Every finding, in the order of the literature table."""

BY_NAME = {f.name: f for f in FINDINGS}
