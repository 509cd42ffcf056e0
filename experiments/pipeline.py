"""`saelab run`: the stages of a run, the run directory and its manifest.

    organisms -> behavior -> figures -> report

Each stage declares its inputs (config sections and files) and its outputs. The manifest
records, per finished stage, the hash of its inputs and of its outputs; a stage is skipped
when its inputs hash the same and its outputs are still there unchanged, so re-running a
finished run takes seconds. `--force STAGE` re-runs one stage whatever the hashes say.

Outputs appear atomically: a stage writes under a temporary name and renames when done,
and the manifest marks a stage finished only after that, so a killed run never leaves an
output that looks finished (the next run cleans the temporaries and resumes).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import yaml

from activations.atomic import clean_temporaries, write_atomic
from experiments.config import code_hash, fingerprint, to_dict
from experiments.distributed import broadcast, dist_barrier, dist_rank_world, init_distributed
from experiments.runconfig import RunConfig

MANIFEST_VERSION = 1


@dataclass
class Stage:
    name: str
    sections: tuple[str, ...]
    """Config sections (top-level keys of RunConfig) the stage reads; ("*",) = all."""
    inputs: Callable[[Path, RunConfig], list[Path]]
    """Files the stage reads (outputs of earlier stages)."""
    outputs: Callable[[Path, RunConfig], list[Path]]
    """Files the stage writes; all must exist for the stage to count as finished."""
    run: Callable[[Path, RunConfig, bool], None]
    """(run dir, config, force) -> None; writes the outputs atomically."""
    code: tuple[str, ...] = ()
    """Modules or packages whose source decides the outputs: editing them re-runs the stage."""
    distributed: bool = False
    """Under torchrun, every rank runs the stage (it splits the work); otherwise rank 0 alone."""


# ---- files, hashes, versions -----------------------------------------------------------
def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _files_hash(run: Path, files: list[Path]) -> dict[str, str]:
    return {str(p.relative_to(run)): file_hash(p) for p in sorted(files)}


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("saelab", "torch", "transformers", "transformer-lens", "sae-lens", "numpy", "h5py", "matplotlib"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def git_revision() -> str | None:
    """The source tree's git commit (with `-dirty` when it has local changes), if any."""
    src = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=src,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


# ---- the run ---------------------------------------------------------------------------
def stage_inputs(run: Path, cfg: RunConfig, stage: Stage) -> tuple[str, dict[str, str]]:
    """(hash of everything the stage reads, per-file hashes)."""
    data = to_dict(cfg)
    sections = data if stage.sections == ("*",) else {s: data[s] for s in ("seed",) + stage.sections}
    files = _files_hash(run, stage.inputs(run, cfg))
    return fingerprint({"config": sections, "files": files, "code": code_hash(stage.code)}), files


def _up_to_date(run: Path, cfg: RunConfig, stage: Stage, record: dict | None, inputs: str) -> bool:
    if not record or record.get("inputs_hash") != inputs:
        return False
    outs = stage.outputs(run, cfg)
    if not outs or not all(p.is_file() for p in outs):
        return False
    return record.get("outputs") == _files_hash(run, outs)


# Machine settings: they may differ between runs of the same experiment.
MACHINE_KEYS = ("device", "threads")


def _read_manifest(run: Path) -> dict | None:
    """The run's manifest if saelab wrote it (a JSON object with manifest_version and a
    stages mapping), else None; a manifest.json that is not ours is never rewritten."""
    try:
        manifest = json.loads((run / "manifest.json").read_bytes())
    except (OSError, ValueError):
        return None
    ok = isinstance(manifest, dict) and "manifest_version" in manifest and isinstance(manifest.get("stages"), dict)
    return manifest if ok else None


def _read_run_config(path: Path) -> dict:
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


def _check_config(run: Path, cfg: RunConfig, overwrite: bool) -> None:
    """Before the lock is taken and before anything is written: `run` is new, empty, or a
    run directory saelab wrote (its manifest, or a config.yaml that loads as this kind of
    config: a run killed before its first manifest); any other folder is refused, whatever
    `overwrite` says. A run directory of a different config needs `overwrite`."""
    from experiments.config import from_dict

    if run.exists() and not run.is_dir():
        raise FileExistsError(f"--out {run} is a file, not a run directory")
    if not run.exists() or not any(run.iterdir()):
        return
    manifest, path = _read_manifest(run), run / "config.yaml"
    raw = parsed = None
    if path.is_file():
        try:
            raw = _read_run_config(path)
        except ValueError:
            if manifest is not None:  # our run directory with a damaged config: say so
                raise
    if raw is not None:
        try:
            parsed = to_dict(from_dict(type(cfg), raw, str(path)))
        except ValueError:
            parsed = None
    if manifest is None and parsed is None:
        raise FileExistsError(f"{run} exists and is not a saelab run directory (no saelab manifest.json or "
                              "config.yaml); it was left untouched: use another --out")
    if manifest is None and (run / "manifest.json").exists():
        raise ValueError(f"{run / 'manifest.json'} is not a saelab manifest; delete it (every stage then runs again)")
    if not path.is_file():
        return
    # Fields added since the run was written count with their defaults (from_dict fills them);
    # a config from_dict refuses (a field removed or renamed since) is compared as written.
    old = parsed if parsed is not None else raw
    new = to_dict(cfg)
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in MACHINE_KEYS)
    if diff and not overwrite:
        raise FileExistsError(f"{run} was written by a different config (differs in: {', '.join(diff)}); "
                              "use another --out, or pass --overwrite to re-run the stages it changes")


class _RunLock:
    """An exclusive lock on a run directory: two runs must not clean each other's temporaries."""

    def __init__(self, run: Path):
        self.path = run / ".lock"

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


def run_pipeline(cfg: RunConfig, run: Path, stages: list[Stage], force: list[str] = (),
                 until: str | None = None, overwrite: bool = False, log: Callable[[str], None] = print) -> dict:
    """Run (or skip) each stage in order; returns the manifest.

    Under torchrun (WORLD_SIZE > 1) every rank calls this: rank 0 alone checks the config,
    holds the lock, decides what is up to date and writes the manifest; stages marked
    `distributed` run on every rank, the others on rank 0 while the rest wait."""
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
                _check_config(run, cfg, overwrite)
                run.mkdir(parents=True, exist_ok=True)
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


def _run_locked(cfg: RunConfig, run: Path, stages: list[Stage], force, until, log) -> dict:
    names = [s.name for s in stages]
    rank = dist_rank_world()[0]
    manifest: dict = {}
    mpath = run / "manifest.json"
    if rank == 0:
        clean_temporaries(run)
        write_atomic(run / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
        manifest = _read_manifest(run) or {}  # _check_config has refused a manifest that is not ours
        manifest.update({
            "manifest_version": MANIFEST_VERSION,
            "config_fingerprint": fingerprint(to_dict(cfg)),
            "seed": cfg.seed,
            "versions": versions(),
            "git_revision": git_revision(),
            "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
            "world_size": dist_rank_world()[1],
            "stages": manifest.get("stages", {}),
        })
        manifest["stages"] = {k: v for k, v in manifest["stages"].items() if k in names}
        write_atomic(mpath, json.dumps(manifest, indent=1))
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
                write_atomic(mpath, json.dumps(manifest, indent=1))
            t0 = time.perf_counter()
            if rank == 0 or stage.distributed:
                stage.run(run, cfg, stage.name in force)
            dist_barrier()  # a rank that raised never gets here; torchrun then stops the others
            seconds = time.perf_counter() - t0
            if rank == 0:
                outs = stage.outputs(run, cfg)
                missing = [str(p) for p in outs if not p.is_file()]
                if missing:  # a bug in the stage, not a user mistake
                    raise RuntimeError(f"stage {stage.name} did not write {missing}")
                manifest["stages"][stage.name] = {
                    "inputs_hash": inputs, "inputs": files, "outputs": _files_hash(run, outs),
                    "seconds": round(seconds, 2),
                    "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                }
                write_atomic(mpath, json.dumps(manifest, indent=1))
            log(f"[{stage.name}] done in {seconds:.0f} s")
        if stage.name == until:
            break
    log(f"run {run}: finished in {time.perf_counter() - t_all:.0f} s")
    return manifest
