"""The layout of a run directory, `runs/NAME/`: every path and file name in one place.

    config.yaml, manifest.json, .lock         the run's config, what finished, the run lock
    models/<name>/                            an organism's weights (organisms study)
    models/<name>.json                        what was found of a pair's model (pairs study)
    behavior/<name>.json                      the behavioural suite of each model
    activations/<name>/                       each model's activation cache (activations.cache)
    saes/<name>/                              each model's SAE (SAELens' format)
    saes/frontier/<point>/                    the base model's SAE of each frontier point
    saes/crosscoder-<variant>/                crosscoder base x variant, with diff.json
    saes/eval.json                            every SAE metric of the run
    features/<name>.json                      latent scores of each model's SAE
    steering/<variant>.json                   steering each variant; base-validation.json
    elicit/<variant>.json                     the ladder and base-free interventions per site
    elicit/activations/<name>/                each model's training cache (train-split tokens)
    elicit/saes/<name>/<site>/                each model's SAE at each elicitation site
                                              (transcoder-<layer>/: its transcoder of that MLP)
    elicit/crosscoders/<variant>/<site>/      base x variant crosscoder at each site
    figures/<figure>.png, <figure>.json       each figure and the numbers it draws
    report.json, report.md                    the report

No other module joins run paths by hand: a stage asks this object, so a file name changes
in one place. Like `activations.cache.format`, it knows the layout, not what the files hold.
"""

from __future__ import annotations

from pathlib import Path

from sae_lens.constants import SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME

CONFIG = "config.yaml"
MANIFEST = "manifest.json"
LOCK = ".lock"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
SAE_EVAL = "eval.json"
VALIDATION = "base-validation.json"
CROSSCODER_WEIGHTS = "crosscoder_weights.safetensors"
CROSSCODER_DIFF = "diff.json"
SAE_FILES = (SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME)
"""What an SAE folder must hold to load (SAELens' own file names)."""
CROSSCODER_FILES = (SAE_CFG_FILENAME, CROSSCODER_WEIGHTS, CROSSCODER_DIFF)
CACHE_FILES = ("meta.json", "index.json")
"""What a complete cache has (meta + index describe it; hashing the shards would read
gigabytes on every run of a big model)."""
ORGANISM_FILES = ("model.safetensors", "saelab.json")
FIGURE_EXTS = ("png", "json")


class MissingStage(FileNotFoundError):
    """A command needs a stage this run has not finished; the message names the command."""


class _Sub:
    """A path of the run directory, `root / parts` (a class attribute of RunDir)."""

    def __init__(self, *parts: str):
        self.parts = parts

    def __get__(self, run: "RunDir | None", owner=None):
        return self if run is None else run.root.joinpath(*self.parts)


class RunDir:
    """The paths of one run directory (nothing is created or read here)."""

    config = _Sub(CONFIG)
    manifest = _Sub(MANIFEST)
    lock = _Sub(LOCK)
    report_json = _Sub(REPORT_JSON)
    report_md = _Sub(REPORT_MD)
    # one folder per stage
    models = _Sub("models")
    behaviors = _Sub("behavior")
    activations = _Sub("activations")
    saes = _Sub("saes")
    features_dir = _Sub("features")
    steering_dir = _Sub("steering")
    figures = _Sub("figures")
    elicit_dir = _Sub("elicit")
    findings_dir = _Sub("findings")
    sae_eval = _Sub("saes", SAE_EVAL)
    validation = _Sub("steering", VALIDATION)
    sae_scratch = _Sub(".saes.tmp-dist")
    """Where every rank of the sae stage writes its SAEs before rank 0 renames the folder to
    saes/ (one name for all ranks: a pid would differ between them)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    # ---- files of one model, variant or figure -------------------------------------------
    def model(self, name: str) -> Path:
        """An organism's folder (weights, tokenizer, saelab.json)."""
        return self.models / name

    def organism_files(self, name: str) -> list[Path]:
        return [self.model(name) / f for f in ORGANISM_FILES]

    def model_record(self, name: str) -> Path:
        """What the pairs study found of a model (spec, architecture, hashes)."""
        return self.models / f"{name}.json"

    def finetuned(self, name: str) -> Path:
        """finetuned/<name>/: a model the finetune stage made (a plain HF folder)."""
        return self.root / "finetuned" / name

    def behavior(self, name: str) -> Path:
        return self.behaviors / f"{name}.json"

    def cache(self, name: str) -> Path:
        return self.activations / name

    def cache_files(self, name: str) -> list[Path]:
        return [self.cache(name) / f for f in CACHE_FILES]

    def sae(self, name: str) -> Path:
        return self.saes / name

    def frontier(self, point: str) -> Path:
        return self.saes / "frontier" / point

    def crosscoder(self, variant: str) -> Path:
        return self.saes / f"crosscoder-{variant}"

    def crosscoder_diff(self, variant: str) -> Path:
        """The sae stage's table of a crosscoder's latents (r, class, Latent Scaling)."""
        return self.crosscoder(variant) / CROSSCODER_DIFF

    def features(self, name: str) -> Path:
        return self.features_dir / f"{name}.json"

    def steering(self, variant: str) -> Path:
        return self.steering_dir / f"{variant}.json"

    def finding(self, part: str) -> Path:
        """findings/<part>.json: one of the literature's findings a pair run measured."""
        return self.findings_dir / f"{part}.json"

    def elicit(self, variant: str) -> Path:
        return self.elicit_dir / f"{variant}.json"

    def elicit_cache(self, name: str) -> Path:
        return self.elicit_dir / "activations" / name

    def elicit_sae(self, name: str, site: str) -> Path:
        return self.elicit_dir / "saes" / name / site

    def elicit_crosscoder(self, variant: str, site: str) -> Path:
        return self.elicit_dir / "crosscoders" / variant / site

    def figure(self, name: str, ext: str = "png") -> Path:
        return self.figures / f"{name}.{ext}"

    def figure_files(self, names) -> list[Path]:
        return [self.figure(n, ext) for n in names for ext in FIGURE_EXTS]

    def relative(self, path: Path) -> str:
        """`path` as the manifest and the messages name it (relative to the run)."""
        path = Path(path)
        return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)

    # ---- what is missing -------------------------------------------------------------------
    def require(self, missing: dict[str, list[Path]], why: str, stage_commands: dict[str, str] | None = None) -> None:
        """Refuse with MissingStage, naming the first stage (in order) of `missing` that has
        files missing and the command that makes it. `missing`: stage -> its output files;
        `stage_commands`: a stage's own command where it has one (default: re-run the run's
        config up to that stage; finished stages are skipped)."""
        for name, files in missing.items():
            absent = [p for p in files if not p.exists()]
            if absent:
                fix = (stage_commands or {}).get(name) or \
                    f"saelab run --config {self.config} --out {self.root} --until {name}"
                raise MissingStage(f"{why} needs the '{name}' stage, which {self.root} has not finished "
                                   f"(no {self.relative(absent[0])}): run `{fix}` first")
