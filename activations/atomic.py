"""Writing outputs so that an interrupted or failed run never leaves one that looks finished,
and never touches a folder the lab did not write.

- Everything is written under a temporary name (`.NAME.tmp-PID`) and renamed when complete;
  a failed write removes its temporary.
- `claim_out_dir` is the one rule for every command that writes a folder: an absent or
  empty folder is written; a folder of the command's own kind (its marker file, and nothing
  but the files its writer makes) is replaced only with `--overwrite`; any other folder is
  refused, `--overwrite` or not, and is never modified. Commands call it before any work starts.
- `naming(path)` puts the path into OS errors that lack one (a full disk during `write()`
  says only "[Errno 28] No space left on device").

It sits in the lowest package so that every layer (caches, SAEs, the pipeline) uses the
same mechanism."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from pathlib import Path
from typing import Callable, Iterator


def write_json_atomic(path: Path, obj) -> None:
    write_atomic(path, json.dumps(obj, indent=1))


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` via a temporary file and a rename; on failure (a full disk,
    `path` a directory) the temporary is removed and the error names `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with naming(path):
            tmp.write_text(text)
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def is_disk_full(e: BaseException) -> bool:
    """True when `e` (or what caused it) is a full disk, however the library wrapped it:
    an OSError with ENOSPC, or a message carrying it (safetensors, h5py and torch.save
    re-raise it as their own error types with the OS text inside)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            return True
        text = str(e)
        if "No space left on device" in text or "errno = 28" in text or "StorageFull" in text:
            return True
        e = e.__cause__ or e.__context__
    return False


@contextlib.contextmanager
def naming(path: Path) -> Iterator[None]:
    """Re-raise an OS error without a file name, or naming `path`'s temporary (and a full
    disk wrapped by a library), as an OSError naming `path`: the output the user asked for."""
    temporary = f".{Path(path).name}.tmp-"
    try:
        yield
    except OSError as e:
        if e.errno is not None and (e.filename is None or temporary in str(e.filename)):
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        raise
    except Exception as e:  # noqa: BLE001 (a library's own error type around ENOSPC)
        if is_disk_full(e):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from e
        raise


def temp_dir(final: Path) -> Path:
    """An empty temporary folder beside `final`, to be moved into place by `replace_dir`."""
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


@contextlib.contextmanager
def building(final: Path) -> Iterator[Path]:
    """A temporary folder beside `final` to write into; moved into place (`replace_dir`)
    when the block ends normally, removed when it raises. OS errors inside name `final`."""
    final = Path(final)
    tmp = temp_dir(final)
    try:
        with naming(final):
            yield tmp
            replace_dir(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished temporary folder into place. An existing `final` is first renamed to
    `.NAME.old-PID` and removed last, so at every moment either the old or the new folder
    is complete (`restore_old` puts the old one back if a kill lands in between)."""
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        try:
            os.replace(tmp, final)
        except BaseException:
            os.replace(old, final)  # the previous output stays in place, not hidden as .old-
            raise
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)


def claim_out_dir(out: Path, what: str, is_ours: Callable[[Path], bool], overwrite: bool,
                  flag: str = "--out", owns: Callable[[Path], set[str]] | None = None) -> None:
    """Check, before any work, that the folder `out` may be written.

    `what` names the output ("an SAE"); `is_ours(out)` says whether a non-empty folder holds
    one (the marker file its writer leaves). `owns(out)`, if given, names every entry such a
    folder may hold: anything else in it is the user's, so the folder is not replaced. A
    folder that is not ours is refused even with `overwrite`: the lab never deletes files
    it did not write."""
    out = Path(out)
    if out.is_symlink():
        raise FileExistsError(f"{flag} {out} is a symbolic link; give the folder it points to, or a new folder")
    if os.path.lexists(out) and not out.is_dir():
        raise FileExistsError(f"{flag} {out} is a file, not a folder; choose a new folder for {flag}")
    if not out.exists() or not any(out.iterdir()):
        _check_writable(out, flag)
        return
    if not is_ours(out):
        raise FileExistsError(f"{flag} {out} exists and does not hold {what} written by saelab; it was left "
                              f"untouched: choose an empty or new folder for {flag}")
    extra = sorted({p.name for p in out.iterdir()} - owns(out)) if owns is not None else []
    if extra:
        raise FileExistsError(f"{flag} {out} holds {what} and files saelab did not write there "
                              f"({', '.join(extra[:5])}); it was left untouched: move them, or choose another "
                              f"folder for {flag}")
    if not overwrite:
        raise FileExistsError(f"{flag} {out} already holds {what}; pass --overwrite to replace it, or choose "
                              f"another folder for {flag}")


def claim_out_file(out: Path, what: str, is_ours: Callable[[Path], bool], overwrite: bool, suffix: str = ".json",
                   flag: str = "--out") -> None:
    """`claim_out_dir` for a single output file: it must end in `suffix`, must not be a
    folder, its folder must be writable, and an existing file is replaced only when it is
    one of ours and `overwrite` is given."""
    out = Path(out)
    if out.suffix != suffix:
        raise ValueError(f"{flag} must be a {suffix} file, got {str(out)!r}")
    if out.is_dir():
        raise FileExistsError(f"{flag} {out} is a folder; give a {suffix} file path for {flag}")
    if out.exists():
        if not is_ours(out):
            raise FileExistsError(f"{flag} {out} exists and is not {what} written by saelab; it was left "
                                  f"untouched: choose a new file for {flag}")
        if not overwrite:
            raise FileExistsError(f"{flag} {out} already holds {what}; pass --overwrite to replace it")
    _check_writable(out, flag)


def _check_writable(out: Path, flag: str) -> None:
    """The folder that will hold `out` (its nearest existing ancestor) can be written: the
    temporary beside `out` and the rename need it, and failing there would come after the work."""
    parent = Path(out).parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise PermissionError(f"cannot write {flag} {out}: {parent} is not a writable folder")


def json_has_keys(keys: tuple[str, ...]) -> Callable[[Path], bool]:
    """`is_ours` for a JSON output: it parses as an object holding all of `keys`."""
    def check(path: Path) -> bool:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            return False
        return isinstance(data, dict) and all(k in data for k in keys)
    return check


def has_files(*names: str) -> Callable[[Path], bool]:
    """`is_ours` for a folder marked by the files `names` (all present)."""
    return lambda folder: all((Path(folder) / n).is_file() for n in names)


def clean_temporaries(folder: Path) -> None:
    """Remove what an interrupted writer left in `folder` and its subfolders: unfinished
    `.tmp-` files or folders go; a `.old-` folder whose replacement never arrived is put
    back, any other is removed. Never touches a finished output."""
    for old in sorted(folder.glob("**/.*.old-*")):
        final = old.with_name(old.name[1:old.name.rindex(".old-")])
        if not final.exists():
            os.replace(old, final)
        else:
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    for tmp in sorted(folder.glob("**/.*.tmp-*"), reverse=True):
        if tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
