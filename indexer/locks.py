"""Advisory locks between processes (fcntl.flock on a lock file), for builds and publishes of index folders.

``<index>.lock`` (beside the index folder, so it survives the folder being renamed) is held by whoever assembles
or publishes ``<index>``: a build (``lsr index``, ``reindex``, ``--add-dense``, BM25), a compaction, and the
recovery of an interrupted publish. The lock is taken without waiting: a second builder fails at once.

A lock file is removed by its holder on release; a process that locked a file which was removed (or replaced)
meanwhile retries on the current one, so removal never lets two processes hold "the" lock at once.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lsr.errors import IndexFolderError

_held: dict[str, list] = {}  # lock files this process holds → [holders, descriptor] (re-entrant within a process)
_held_guard = threading.Lock()


class LockHeld(IndexFolderError):
    """Another process holds the lock."""


def lock_file(index: Path) -> Path:
    return index.with_name(f"{index.name}.lock")


def try_flock(path: Path, *, create_parent: bool = False, flags: int = os.O_RDWR) -> int | None:
    """An open descriptor of ``path`` holding an exclusive flock, or None when another process holds it.

    Retries when the file was unlinked or replaced between open and flock (its holder removed it on release)."""
    if create_parent:
        path.parent.mkdir(exist_ok=True)
    while True:
        fd = os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            current = os.stat(path)
        except FileNotFoundError:
            os.close(fd)
            continue
        mine = os.fstat(fd)
        if (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino):
            return fd
        os.close(fd)


def held_here(index: str | Path) -> bool:
    """Whether this process holds ``<index>.lock`` (it is building or publishing the index itself)."""
    with _held_guard:
        return str(lock_file(Path(index)).absolute()) in _held


@contextmanager
def index_lock(index: str | Path, what: str = "built") -> Iterator[None]:
    """Holds ``<index>.lock`` for the block; raises ``LockHeld`` at once if another process holds it.

    Re-entrant within one process (a build that opens the index it is building does not lock itself out)."""
    path = lock_file(Path(index))
    key = str(path.absolute())
    with _held_guard:
        if key in _held:
            _held[key][0] += 1
        else:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)  # a build creates --out's missing parents
                fd = try_flock(path)
            except OSError as exc:
                raise IndexFolderError(f"cannot lock {path}: {exc.strerror or exc}") from exc
            if fd is None:
                raise LockHeld(f"{index} is being {what} by another process (it holds {path}); wait for it to finish")
            _held[key] = [1, fd]
    try:
        yield
    finally:
        with _held_guard:
            _held[key][0] -= 1
            if _held[key][0] == 0:
                _, fd = _held.pop(key)
                try:
                    os.unlink(path)  # under the lock: a process that opened it meanwhile retries on a new file
                except OSError:
                    pass
                os.close(fd)
