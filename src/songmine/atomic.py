"""Files that several processes may write at once: whole or absent, and built once.

Caches under the per-user cache dir (test cuts, the demo music, parquet copies
of catalogues) and output files are shared by every process that runs at the
same time — ``pytest -n 2``, two terminals, a server and a CLI. Two rules make
that safe:

* a file is written under a *unique* temporary name in its own directory and
  renamed into place (:func:`atomic_path`), so a reader sees the old file, the
  new one or none — never half of one — and two writers never rename each
  other's temporary file away;
* work that should not be done twice (cutting a track, fetching music) runs
  under an exclusive lock (:func:`exclusive`); whoever waited finds the result
  and uses it (:func:`build_once`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "build_once", "exclusive"]


def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` would race other threads)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


@contextmanager
def atomic_path(dest: str | os.PathLike[str], *, durable: bool = True) -> Iterator[Path]:
    """Yield a unique temporary path beside ``dest``; rename it to ``dest`` if the block succeeds.

    The temporary name keeps ``dest``'s extension, so writers that choose the
    format by extension (soundfile, pandas) work unchanged. If the block
    raises, the temporary file is removed and ``dest`` is left as it was.
    With ``durable`` the data is fsynced before the rename, so a power cut
    cannot leave an empty file under the final name.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "out.txt") as tmp:
    ...     _ = tmp.write_text("whole")
    >>> (d / "out.txt").read_text()
    'whole'
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=f".partial{dest.suffix}")
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a cache or an output is a normal file
        yield tmp
        if durable:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def exclusive(lock: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive advisory lock on the file ``lock`` (created if needed) for the block.

    Other processes (and threads) entering ``exclusive`` on the same path wait.
    The lock dies with its holder, so a killed process never leaves it taken.
    """
    lock = Path(lock)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        _lock_fd(fd)
        yield
    finally:
        os.close(fd)  # closing releases the lock


try:
    import fcntl

    def _lock_fd(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)

except ImportError:  # pragma: no cover - Windows
    import msvcrt

    def _lock_fd(fd: int) -> None:
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
                return
            except OSError:  # LK_LOCK gives up after ~10 s; keep waiting
                continue


def build_once(dest: str | os.PathLike[str], build: Callable[[Path], None]) -> Path:
    """``dest``, built by ``build(tmp_path)`` if it does not exist yet — once, whoever asks at the same time.

    The first caller builds under a lock; the others wait for it and return
    the finished file. A build that raises leaves nothing behind, and the next
    caller tries again.
    """
    dest = Path(dest)
    if dest.exists():
        return dest
    with exclusive(dest.with_name(f".{dest.name}.lock")):
        if not dest.exists():
            with atomic_path(dest) as tmp:
                build(tmp)
    return dest
