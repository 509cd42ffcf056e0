"""Loading typed configs from YAML: unknown keys and wrong types are errors."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, TypeVar

import dacite
import yaml

T = TypeVar("T")
CONFIG_DIR = Path(__file__).parent / "configs"


def from_dict(cls: type[T], data: dict[str, Any], where: str) -> T:
    """Build dataclass `cls` from `data`, refusing unknown keys and wrong types.

    `where` names the source in error messages (a file and a section)."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping of {cls.__name__} fields, got {type(data).__name__}")
    try:
        return dacite.from_dict(cls, data, config=dacite.Config(strict=True, cast=[tuple]))
    except dacite.UnexpectedDataError as e:
        allowed = ", ".join(f.name for f in dataclasses.fields(cls))
        raise ValueError(f"{where}: unknown key(s) {sorted(e.keys)}; allowed: {allowed}") from None
    except dacite.DaciteError as e:
        raise ValueError(f"{where}: {e}") from None
    except ValueError as e:  # a __post_init__ check: say which file it came from
        raise ValueError(f"{where}: {e}") from None


def resolve_config_path(name_or_path: str) -> Path:
    """A built-in config name (`quick`, `default`) or a YAML path."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise FileNotFoundError(f"config file {p} does not exist")
        return p
    builtin = CONFIG_DIR / f"{name_or_path}.yaml"
    if not builtin.is_file():
        names = sorted(q.stem for q in CONFIG_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"no config {name_or_path!r}: give one of {names} or a path to a YAML file")
    return builtin


def load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{path} is not valid YAML: {e}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the top level must be a mapping of config sections")
    return data


def to_dict(obj) -> dict[str, Any]:
    """A dataclass as plain JSON-able data (the inverse of `from_dict`)."""
    return json.loads(json.dumps(dataclasses.asdict(obj)))


def fingerprint(data: Any) -> str:
    """A short stable hash of JSON-able data (what produced an output)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
