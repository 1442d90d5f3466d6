"""What protects a sweep's result file: a sweep never replaces another sweep's
points unasked, and only one sweep at a time writes a file.

The lock is `flock(2)` on `<file>.lock` beside the result (the result itself is
replaced by rename after every point, so a lock on it would guard a file that
no longer has the name). The lock file is removed when the sweep ends; a
process that locked a lock file just unlinked by its previous holder sees that
its inode is no longer the one at the path, and tries again (the usual
lock-file protocol; flock(2) locks an open file, not a name).
"""

import contextlib
import json
import os
from pathlib import Path
from typing import Iterator, Optional

from ..errors import InputError

OVERWRITE_OPTION = "--overwrite"


def check_not_overwriting(path, resume=None, overwrite: bool = False) -> None:
    """Refuse to start a sweep over `path` when it already holds an mlxprof
    result (a sweep's points above all), unless it is the file resumed or
    `overwrite` is set."""
    if not path or overwrite or not os.path.isfile(path):
        return
    if resume and os.path.realpath(resume) == os.path.realpath(path):
        return
    kind = result_kind(path)
    if kind == "sweep":
        raise InputError(f"{path} already holds a sweep's measurements; continue it with --resume {path}, "
                         f"or replace it with {OVERWRITE_OPTION}")
    if kind is not None:
        raise InputError(f"{path} holds a '{kind}' result; pick another --json, or replace it with "
                         f"{OVERWRITE_OPTION}")


def result_kind(path) -> Optional[str]:
    """The `kind` of an mlxprof result file, None for anything else."""
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read(64 << 20))
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and "schema" in data and isinstance(data.get("kind"), str):
        return data["kind"]
    return None


@contextlib.contextmanager
def exclusive(path) -> Iterator[None]:
    """Hold an exclusive lock on `<path>.lock` for the block; InputError when
    another process holds it. No-op for path None."""
    if not path:
        yield
        return
    import fcntl

    lock = Path(f"{path}.lock")
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise InputError(f"cannot create the lock file {lock}: {e.strerror or e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise InputError(f"another mlxprof sweep is writing {path} (it holds {lock}); wait for it to "
                             "finish, or give this one another --json") from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # its holder removed it as we opened it: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for a person looking
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)
