"""The findings stage of a pair run: the literature's findings the config's `findings`
section names (`experiments.pairs.findings`), each into findings/<part>.json, on problems of
the task's `findings.split` (no fine-tune trained on them), and findings/index.json (the
parts and their seconds; alone when the section names no model, so the stage is skipped
once done like every other). Rank 0 alone runs it."""

from __future__ import annotations

import time
from pathlib import Path

from experiments.rundir import RunDir


def findings_outputs(run: RunDir, cfg) -> list[Path]:
    return [run.finding("index")] + [run.finding(part) for part in cfg.findings.parts()]


def run_findings(run: RunDir, cfg, force: bool) -> None:
    from activations.models import load_bridge
    from activations.progress import log
    from experiments.engine.distributed import dist_rank_world
    from experiments.pairs.behavior import load_tokenizer
    from experiments.pairs.findings.common import finding_problems, take
    from experiments.pairs.stages.load import finish, out_dir, write

    if dist_rank_world()[0] != 0:
        return
    fc, task = cfg.findings, cfg.task
    problems = finding_problems(task, fc.split) if fc.parts() else []

    def load(name: str):
        spec = cfg.finding_spec(name, run)
        return load_bridge(spec), load_tokenizer(spec.path, spec.revision)

    tmp = out_dir(run.findings_dir)
    index = {}
    for part in fc.parts():
        t0 = time.perf_counter()
        log(f"  findings {part}")
        if part == "switch":
            from experiments.pairs.findings.switch import switch_sweep

            result = {}
            for role, name in (("model", fc.switch.model), ("control", fc.switch.control)):
                if name is not None:
                    model, tok = load(name)
                    result[role] = {"model": name, **switch_sweep(model, tok, take(problems, 0, fc.switch.n, "switch"),
                                                                  task, fc.switch, fc.batch_size, cfg.seed)}
                    del model
        elif part == "compress":
            from experiments.pairs.findings.compress import compression_study

            model, tok = load(fc.compress.model)
            result = {"model": fc.compress.model,
                      **compression_study(model, tok, problems, task, fc.compress, fc.batch_size, cfg.seed, log=log)}
            del model
        elif part == "format":
            from experiments.pairs.findings.format_eval import format_study

            result = format_study(load, take(problems, 0, fc.format.n, "format"), task, fc.format, fc.batch_size,
                                  log=log)
        else:
            from experiments.pairs.findings.instruction_eval import instruction_study

            result = instruction_study(load, take(problems, 0, fc.instruction.n, "instruction"), task,
                                       fc.instruction, fc.batch_size, log=log)
        result["seconds"] = time.perf_counter() - t0
        write(tmp, run.finding(part).name, result)
        index[part] = {"seconds": result["seconds"]}
        log(f"  findings {part}: done ({result['seconds']:.0f} s)")
    write(tmp, run.finding("index").name, index)
    finish(tmp, run.findings_dir)
