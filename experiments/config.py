"""Loading typed configs from YAML: unknown keys and wrong types are errors."""

from __future__ import annotations

import dataclasses
import hashlib
import errno
import json
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import dacite
import yaml

T = TypeVar("T")
CONFIG_DIR = Path(__file__).parent / "configs"


def from_dict(cls: type[T], data: dict[str, Any], where: str) -> T:
    """Build dataclass `cls` from `data`, refusing unknown keys and wrong types.

    `where` names the source in error messages (a file and a section)."""
    _check_keys(cls, data, where)
    try:
        return dacite.from_dict(cls, data, config=dacite.Config(strict=True, cast=[tuple]))
    except dacite.DaciteError as e:
        raise ValueError(f"{where}: {e}") from None
    except ValueError as e:  # a __post_init__ check: say which file it came from
        raise ValueError(f"{where}: {e}") from None


def _check_keys(cls: type, data: Any, where: str, path: str = "") -> None:
    """Refuse unknown keys at any depth, naming the section and the allowed keys, and values
    outside a `Literal` type, naming the field and the allowed values (dacite's strict mode
    names neither)."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: {path or 'the top level'} must be a mapping of {cls.__name__} "
                         f"fields, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{where}: {path + ': ' if path else ''}unknown key(s) {unknown}; "
                         f"allowed: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        _check_value(hints[name], value, where, f"{path}.{name}" if path else name)


def _check_value(tp: Any, value: Any, where: str, path: str, or_null: bool = False) -> None:
    """`_check_keys` for a nested dataclass, and the `Literal` check, through Optional, lists,
    tuples and dict values; any other type is left to dacite."""
    if value is None:
        return  # allowed or not, dacite says so
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        _check_keys(tp, value, where, path)
    elif origin is typing.Literal:
        if not any(value == a and type(value) is type(a) for a in args):
            raise ValueError(f"{where}: {path} must be one of {list(args)}{' or null' if or_null else ''}, "
                             f"got {value!r}")
    elif origin in (typing.Union, types.UnionType):
        arms = [a for a in args if a is not type(None)]
        if len(arms) == 1:  # Optional[X]
            _check_value(arms[0], value, where, path, or_null=len(args) > 1)
    elif origin in (list, tuple) and isinstance(value, (list, tuple)):
        items = args if origin is tuple and Ellipsis not in args else args[:1] * len(value)
        for i, (t, v) in enumerate(zip(items, value)):
            _check_value(t, v, where, f"{path}[{i}]")
    elif origin is dict and isinstance(value, dict) and len(args) == 2:
        for k, v in value.items():
            _check_value(args[1], v, where, f"{path}.{k}")


def resolve_config_path(name_or_path: str) -> Path:
    """A built-in config name (`quick`, `default`) or a YAML path."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or os.path.lexists(p):
        if p.is_symlink():
            try:
                p.resolve(strict=True)
            except RuntimeError:  # Python < 3.13 reports a loop so
                raise ValueError(f"config {p} is a symlink loop (it points back at itself); give the YAML file") from None
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise ValueError(f"config {p} is a symlink loop (it points back at itself); "
                                     "give the YAML file") from None
                if e.errno == errno.ENOENT:
                    raise FileNotFoundError(f"config {p} is a symlink to a file that does not exist") from None
                raise
        if p.is_dir():
            raise IsADirectoryError(f"config {p} is a directory, not a YAML file; give the file inside it")
        if not p.is_file():
            raise FileNotFoundError(f"config file {p} does not exist")
        return p
    builtin = CONFIG_DIR / f"{name_or_path}.yaml"
    if not builtin.is_file():
        names = sorted(q.stem for q in CONFIG_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"no config {name_or_path!r}: give one of {names} or a path to a YAML file")
    return builtin


def load_yaml(path: Path) -> dict[str, Any]:
    """A config file's top-level mapping; an empty file, invalid YAML or text that is not
    UTF-8 is one error naming the file (and the line and column)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text (byte {e.start}: {e.reason}); save it as UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ValueError(f"{where}: invalid YAML: {what}") from None
    if data is None:
        raise ValueError(f"{path} is empty (no settings); write at least one section, or start from a "
                         "built-in config (experiments/configs/quick.yaml)")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the top level must be a mapping of config sections")
    return data


def to_dict(obj) -> dict[str, Any]:
    """A dataclass as plain JSON-able data (the inverse of `from_dict`)."""
    return json.loads(json.dumps(dataclasses.asdict(obj)))


def fingerprint(data: Any) -> str:
    """A short stable hash of JSON-able data (what produced an output)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def check_device(device: str) -> None:
    """Refuse a device string torch does not know, or CUDA where torch sees no GPU."""
    import torch

    try:
        torch.device(device)
    except RuntimeError:
        raise ValueError(f"device {device!r} is not a torch device; use cpu, cuda, cuda:N, mps") from None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} but torch sees no CUDA GPU here (torch {torch.__version__}); "
                         "use device: cpu, or install a CUDA build of torch")
