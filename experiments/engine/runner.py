"""The engine: run a study's stages in order, skipping those that are up to date.

Each stage declares its inputs (config sections and files) and its outputs. The manifest
records, per finished stage, the hash of its inputs (with its code: the import closure of
the modules it runs, `experiments.engine.code`) and of its outputs; a stage is skipped when
its inputs hash the same and its outputs are still there unchanged, so re-running a
finished run takes seconds. `--force STAGE` re-runs one stage whatever the hashes say.

Outputs appear atomically: a stage writes under a temporary name and renames when done,
and the manifest marks a stage finished only after that, so a killed run never leaves an
output that looks finished (the next run cleans the temporaries and resumes).

Under torchrun every rank calls `run_stages`: rank 0 alone checks the config, holds the
lock, decides what is up to date and writes the manifest; stages marked `distributed` run on
every rank (they split their work), the others on rank 0 while the rest wait.
"""

from __future__ import annotations

import fcntl
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import yaml

from activations.atomic import clean_temporaries, write_atomic
from experiments.config import fingerprint, to_dict
from experiments.engine.code import closure_hash
from experiments.engine.distributed import broadcast, dist_barrier, dist_rank_world, init_distributed
from experiments.engine.manifest import MANIFEST_VERSION, files_hash, git_revision, machine, read_manifest, versions
from experiments.engine.stage import Stage
from experiments.rundir import RunDir

# ---- the run ---------------------------------------------------------------------------
def stage_inputs(run: RunDir, cfg: Any, stage: Stage) -> tuple[str, dict[str, str]]:
    """(hash of everything the stage reads: config sections, input files, code; per-file hashes)."""
    data = to_dict(cfg)
    sections = data if stage.sections == ("*",) else {s: data[s] for s in ("seed",) + stage.sections}
    files = files_hash(run.root, stage.inputs(run, cfg))
    return fingerprint({"config": sections, "files": files, "code": closure_hash(stage.code_roots())}), files


def _up_to_date(run: RunDir, cfg: Any, stage: Stage, record: dict | None, inputs: str) -> bool:
    if not record or record.get("inputs_hash") != inputs:
        return False
    outs = stage.outputs(run, cfg)
    if not outs or not all(p.is_file() for p in outs):
        return False
    return record.get("outputs") == files_hash(run.root, outs)


# Machine settings: they may differ between runs of the same experiment.
MACHINE_KEYS = ("device", "threads")


def read_run_config(path: Path) -> dict:
    """A run directory's config.yaml as a mapping (one-line errors naming the file)."""
    try:
        old = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text; fix or delete it") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{path} is not valid YAML ({str(e).splitlines()[0]}); fix or delete it") from None
    if not isinstance(old, dict):
        raise ValueError(f"{path} is not a saelab config (not a mapping); fix or delete it")
    return old


def check_out(run: RunDir, cfg: Any, overwrite: bool) -> None:
    """Before the lock is taken and before anything is written: the run directory is new,
    empty, or one saelab wrote (its manifest, or a config.yaml that loads as this kind of
    config: a run killed before its first manifest); any other folder is refused, whatever
    `overwrite` says. A run directory of a different config needs `overwrite`."""
    from experiments.config import from_dict

    root = run.root
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"--out {root} is a file, not a run directory")
    if not root.exists() or not any(root.iterdir()):
        return
    manifest, path = read_manifest(run.manifest), run.config
    raw = parsed = None
    if path.is_file():
        try:
            raw = read_run_config(path)
        except ValueError:
            if manifest is not None:  # our run directory with a damaged config: say so
                raise
    if raw is not None:
        try:
            parsed = to_dict(from_dict(type(cfg), raw, str(path)))
        except ValueError:
            parsed = None
    if manifest is None and parsed is None:
        raise FileExistsError(f"{root} exists and is not a saelab run directory (no saelab manifest.json or "
                              "config.yaml); it was left untouched: use another --out")
    if manifest is None and run.manifest.exists():
        raise ValueError(f"{run.manifest} is not a saelab manifest; delete it (every stage then runs again)")
    if not path.is_file():
        return
    # Fields added since the run was written count with their defaults (from_dict fills them);
    # a config from_dict refuses (a field removed or renamed since) is compared as written.
    old = parsed if parsed is not None else raw
    new = to_dict(cfg)
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in MACHINE_KEYS)
    if diff and not overwrite:
        raise FileExistsError(f"{root} was written by a different config (differs in: {', '.join(diff)}); "
                              "use another --out, or pass --overwrite to re-run the stages it changes")


class _RunLock:
    """An exclusive lock on a run directory: two runs must not clean each other's temporaries."""

    def __init__(self, run: RunDir):
        self.path = run.lock

    def __enter__(self):
        self.f = open(self.path, "w")
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.f.close()
            raise FileExistsError(f"another saelab run is using {self.path.parent}; wait for it to finish") from None
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def run_stages(cfg: Any, out: str | Path | RunDir, stages: list[Stage], force: list[str] = (),
               until: str | None = None, overwrite: bool = False, log: Callable[[str], None] = print) -> dict:
    """Run (or skip) each stage in order into run directory `out`; returns the manifest."""
    run = out if isinstance(out, RunDir) else RunDir(out)
    names = [s.name for s in stages]
    for f in list(force) + ([until] if until else []):
        if f not in names:
            raise ValueError(f"unknown stage {f!r}: stages are {', '.join(names)}")
    import torch

    joined = init_distributed(cfg.device) is not None
    threads = torch.get_num_threads()
    if getattr(cfg, "threads", 0):  # restored below: a caller's later work keeps its own setting
        torch.set_num_threads(cfg.threads)
    try:
        rank = dist_rank_world()[0]
        error = None
        if rank == 0:
            try:
                check_out(run, cfg, overwrite)
                run.root.mkdir(parents=True, exist_ok=True)
            except (OSError, ValueError) as e:
                error = e
        if broadcast(None if error is None else f"{type(error).__name__}: {error}") is not None:
            if error is not None:
                raise error
            raise SystemExit(2)  # rank 0 says why
        if rank == 0:
            with _RunLock(run):
                return _run_locked(cfg, run, stages, force, until, log)
        return _run_locked(cfg, run, stages, force, until, lambda line: None)
    finally:
        torch.set_num_threads(threads)
        if joined:
            torch.distributed.destroy_process_group()


def _start_manifest(cfg: Any, run: RunDir, names: list[str]) -> dict:
    clean_temporaries(run.root)
    write_atomic(run.config, yaml.safe_dump(to_dict(cfg), sort_keys=False))
    manifest = read_manifest(run.manifest) or {}  # check_out has refused a manifest that is not ours
    manifest.update({
        "manifest_version": MANIFEST_VERSION,
        "config_fingerprint": fingerprint(to_dict(cfg)),
        "seed": cfg.seed,
        "versions": versions(),
        "machine": machine(),
        "git_revision": git_revision(),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "world_size": dist_rank_world()[1],
        "stages": manifest.get("stages", {}),
    })
    manifest["stages"] = {k: v for k, v in manifest["stages"].items() if k in names}
    write_atomic(run.manifest, json.dumps(manifest, indent=1))
    return manifest


def _run_locked(cfg: Any, run: RunDir, stages: list[Stage], force, until, log) -> dict:
    rank = dist_rank_world()[0]
    manifest = _start_manifest(cfg, run, [s.name for s in stages]) if rank == 0 else {}
    dist_barrier()
    t_all = time.perf_counter()
    for stage in stages:
        skip = inputs = files = None
        if rank == 0:
            inputs, files = stage_inputs(run, cfg, stage)
            record = manifest["stages"].get(stage.name)
            skip = stage.name not in force and _up_to_date(run, cfg, stage, record, inputs)
        if broadcast(skip):
            log(f"[{stage.name}] up to date, skipped")
        else:
            # Forget the old record first: the manifest never vouches for outputs in rewrite.
            if rank == 0 and manifest["stages"].pop(stage.name, None) is not None:
                write_atomic(run.manifest, json.dumps(manifest, indent=1))
            log(f"[{stage.name}] started")
            t0 = time.perf_counter()
            if rank == 0 or stage.distributed:
                stage.run(run, cfg, stage.name in force)
            dist_barrier()  # a rank that raised never gets here; torchrun then stops the others
            seconds = time.perf_counter() - t0
            if rank == 0:
                _record(run, cfg, stage, manifest, inputs, files, seconds)
            log(f"[{stage.name}] done in {seconds:.0f} s")
        if stage.name == until:
            break
    log(f"run {run.root}: finished in {time.perf_counter() - t_all:.0f} s")
    return manifest


def _record(run: RunDir, cfg: Any, stage: Stage, manifest: dict, inputs: str, files: dict, seconds: float) -> None:
    outs = stage.outputs(run, cfg)
    missing = [str(p) for p in outs if not p.is_file()]
    if missing:  # a bug in the stage, not a user mistake
        raise RuntimeError(f"stage {stage.name} did not write {missing}")
    manifest["stages"][stage.name] = {
        "inputs_hash": inputs, "inputs": files, "outputs": files_hash(run.root, outs),
        "seconds": round(seconds, 2), "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_atomic(run.manifest, json.dumps(manifest, indent=1))


def require_stages(run: RunDir, cfg: Any, stages: list[Stage], names: list[str], why: str,
                   commands: dict[str, str] | None = None) -> None:
    """Refuse (naming the stage and the command that makes it) when a stage of `names` has
    not finished in `run`; `commands`: a stage's own command where it has one."""
    by_name = {s.name: s for s in stages}
    run.require({n: by_name[n].outputs(run, cfg) for n in names}, why, commands)
