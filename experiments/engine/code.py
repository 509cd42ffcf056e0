"""What code a stage runs: the import closure of its modules, inside this project.

A stage's outputs depend on the source of every module its run function can reach. Reading
that from the imports themselves, rather than from a list someone keeps by hand, means an
edit to any module a stage runs re-runs it, and an edit elsewhere does not.

    closure(["experiments.stages.cache"]) -> {"experiments.stages.cache", "activations.cache.writer", ...}

The closure follows every `import` and `from ... import` in a module's source, at any depth
(this project imports heavy libraries inside functions, so a top-level-only scan would miss
most of what runs), and the `__init__` of every package on the way (Python runs it on import).
A package's data files (templates, shipped problems: anything not Python in its folder or a
subfolder that is not a package) count as its source too. The four top-level folders are
not scanned for data: theirs (built-in configs, the browser's assets) no stage reads as
code. Modules outside the four packages (torch, SAELens) are versioned by the manifest.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Iterable

PACKAGES = ("activations", "sae", "features", "experiments")
"""The project's packages; imports of anything else are not followed."""
ROOT = Path(__file__).resolve().parents[2]
"""The folder holding the four packages."""


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The source file of project module `name`, or None if it is not one."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*name.split("."))
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f
    return None


def _resolve(name: str, root: Path) -> str | None:
    """The longest prefix of dotted `name` that is a project module (`a.b.C` -> `a.b`)."""
    while name:
        if module_file(name, root) is not None:
            return name
        name = name.rpartition(".")[0]
    return None


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


@lru_cache(maxsize=None)
def _imports(path: Path, mtime_ns: int, name: str, root: Path) -> frozenset[str]:
    tree = ast.parse(path.read_bytes(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            # `from pkg import mod` imports the module pkg.mod; `from mod import name` just mod
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for n in names:
            target = _resolve(n, root)
            if target is not None:
                found.update(_with_parents(target))
    return frozenset(found - {name})


def imports(name: str, root: Path = ROOT) -> frozenset[str]:
    """Project modules `name` imports anywhere in its source (with their parent packages)."""
    path = module_file(name, root)
    if path is None:
        raise ValueError(f"{name!r} is not a module of this project ({', '.join(PACKAGES)})")
    return _imports(path, path.stat().st_mtime_ns, name, root)


def closure(roots: Iterable[str], root: Path = ROOT) -> set[str]:
    """Every project module reachable from `roots` by imports (the roots and their packages too)."""
    todo = [p for r in roots for p in _with_parents(r)]
    seen: set[str] = set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo.extend(imports(m, root) - seen)
    return seen


def data_files(package: str, root: Path = ROOT) -> list[Path]:
    """The data files of a (non-top-level) package: files that are not Python in its folder
    and in its subfolders that are not packages themselves."""
    f = module_file(package, root)
    if f is None or f.name != "__init__.py" or "." not in package:
        return []
    out, todo = [], [f.parent]
    while todo:
        d = todo.pop()
        for p in sorted(d.iterdir()):
            if p.is_dir() and p.name != "__pycache__" and not (p / "__init__.py").exists():
                todo.append(p)
            elif p.is_file() and p.suffix not in (".py", ".pyc"):
                out.append(p)
    return sorted(out)


def closure_hash(roots: Iterable[str], root: Path = ROOT) -> str:
    """A short hash of the source (and data files) of every module in the closure of `roots`."""
    h = hashlib.sha256()
    for m in sorted(closure(roots, root)):
        h.update(m.encode() + b"\0" + module_file(m, root).read_bytes() + b"\0")
        for d in data_files(m, root):
            h.update(str(d.relative_to(root)).encode() + b"\0" + d.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def modules_of(*functions) -> list[str]:
    """The modules defining `functions` (a stage's run function and the study hooks it calls)."""
    return sorted({f.__module__ for f in functions})
