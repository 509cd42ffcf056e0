"""The command line's error boundary: which exceptions are the user's to fix, and the one
line that says what is wrong and how to fix it.

Everything `saelab COMMAND` does, argument parsing and config checks included, runs inside
`experiments.cli.main`'s handler, which asks `user_message` for the line. An exception it
does not know is a bug in saelab and keeps its traceback (so does every error with
SAELAB_DEBUG=1)."""

from __future__ import annotations

import errno


class UsageError(ValueError):
    """A command line argparse cannot parse (unknown option, missing or ill-typed value)."""


# What to do about an OS error, by errno (the message already says what happened).
_OS_FIXES = {
    errno.EACCES: "check the file's permissions, or choose another path",
    errno.EROFS: "the file system is read-only; choose a path on a writable disk",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder; check the path",
    errno.EISDIR: "give a file, not a folder",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n)",
    errno.EDQUOT: "over the disk quota: free some space or write elsewhere",
}


def user_message(e: BaseException, out: str | None = None) -> str | None:
    """The one line for an error the user can fix, or None for a bug. `out`: the command's
    output path, named when a full disk's error does not say which file it was writing."""
    from activations.atomic import is_disk_full

    if is_disk_full(e):
        where = getattr(e, "filename", None) or out
        return (f"no space left on the device while writing {where or 'the output'}: free some space there, "
                "or write to another disk")
    if isinstance(e, OSError) and e.errno is not None and e.filename is not None:
        fix = _OS_FIXES.get(e.errno)
        return f"{e.strerror or e}: {e.filename}" + (f"; {fix}" if fix else "")
    if isinstance(e, (ValueError, OSError, FloatingPointError)):  # ours carry their own fix
        return one_line(str(e))
    if _is_library_error(e):
        return one_line(f"{type(e).__name__}: {e}")
    if isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError":
        return one_line(f"out of memory ({e}); use a smaller --batch_size or a machine with more memory")
    return None


def _is_library_error(e: BaseException) -> bool:
    """Errors of the file formats saelab reads, raised where no saelab code named the file."""
    import yaml
    from safetensors import SafetensorError

    return isinstance(e, (yaml.YAMLError, SafetensorError))


def one_line(text: str) -> str:
    """A message on one line: library messages often span several."""
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip()) or "unknown error"
