"""One writer per output: an exclusive OS file lock on a folder (or cache entry) while lntune writes it.

    from lntune.locks import hold_lock
    with hold_lock(Path("runs/x"), "training run"):
        ...                                   # a second process is refused at once, naming this one's pid

The lock is `fcntl.flock` on a lock file (`.lntune.lock` inside the folder, or `.<name>.lock` beside a cache
entry that does not exist yet), removed again on release. The kernel drops the lock when the process exits,
however it exits (SIGKILL included), so a killed run never leaves a stale lock, only a harmless file that the
next writer takes over. Locks are re-entrant within one process (a pipeline that holds a folder may call a
step that locks it again).
Writing in place is atomic too: `write_text_atomic`, `replace_file` and `replace_folder` write a per-process
temporary sibling (`temp_name`) and rename it over the target, so a killed writer never leaves a half-written
file or folder, and two processes never share a half-written one; the next write of the same target deletes
the siblings of writers that have exited.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import shutil
import threading
import time
from pathlib import Path

from lntune.errors import LntuneError

LOCK_FILE = ".lntune.lock"
_held: dict[str, list] = {}  # lock path -> [open fd, depth], this process's locks
_guard = threading.Lock()


def temp_name(path: Path) -> Path:
    """A sibling of `path` that only this process writes: NAME.tmp-<pid>."""
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


def replace_file(path: Path, write) -> Path:
    """Call `write(tmp)` on this process's temporary sibling of the file `path`, then rename it over `path`."""
    path = Path(path)
    tmp = temp_name(path)
    remove_dead_temps(path)
    try:
        _written(path, write, tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """`path.write_text(text)`, all or nothing."""
    return replace_file(path, lambda tmp: tmp.write_text(text, encoding=encoding))


def replace_folder(out: Path, write, make: bool = False) -> Path:
    """Call `write(tmp)` on this process's temporary sibling of `out` (created first when `make`), then put it in
    place of `out`."""
    out = Path(out)
    tmp = temp_name(out)
    shutil.rmtree(tmp, ignore_errors=True)
    remove_dead_temps(out)
    try:
        if make:
            tmp.mkdir(parents=True)
        _written(out, write, tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _written(target: Path, write, tmp: Path) -> None:
    """write(tmp); a failure of the machine (full disk, read-only, ...) becomes one LntuneError naming `target`."""
    from lntune.failures import failed_write

    try:
        write(tmp)
    except LntuneError:
        raise
    except Exception as err:
        error = failed_write(target, err)
        if error is None:
            raise
        raise error from err


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_dead_temps(target: Path) -> list[Path]:
    """Delete `NAME.tmp-PID` siblings of `target` whose writer (PID) has exited; returns what was deleted."""
    target = Path(target)
    removed = []
    if not target.parent.is_dir():
        return removed
    for leftover in target.parent.glob(f"{glob.escape(target.name)}.tmp-*"):
        pid = leftover.name.rsplit(".tmp-", 1)[1]
        if not pid.isdigit() or int(pid) == os.getpid() or pid_alive(int(pid)):
            continue
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        removed.append(leftover)
    return removed


def remove_stale_temps(folder: Path, prefix: str) -> None:
    """Delete leftovers `PREFIX*.tmp*` of killed writers in `folder` (call only while holding its lock)."""
    if not folder.is_dir():
        return
    for leftover in folder.glob(f"{prefix}*.tmp*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def lock_path_for(target: Path, inside: bool) -> Path:
    """Where the lock of `target` lives: inside it (an output folder) or beside it (a cache entry)."""
    return target / LOCK_FILE if inside else target.with_name(f".{target.name}.lock")


@contextlib.contextmanager
def hold_lock(target, what: str, inside: bool = True):
    """Hold the exclusive lock of `target` for the block; LntuneError at once when another process holds it."""
    target = Path(target)
    lock = lock_path_for(target, inside)
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _cannot_write(lock.parent, what, err) from None
    key = str(lock.resolve())
    with _guard:
        entry = _held.get(key)
        if entry:
            entry[1] += 1
    if not entry:
        fd = _acquire(lock, target, what)
        with _guard:
            _held[key] = [fd, 1]
    try:
        yield lock
    finally:
        _release(key)


def _acquire(lock: Path, target: Path, what: str) -> int:
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise _cannot_write(lock.parent, what, err) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise LntuneError(f"{target}: another lntune process (pid {holder}) is writing this {what}; wait for it "
                              "to finish or stop it (the lock goes away when that process exits)") from None
        if _still_linked(fd, lock):
            break
        os.close(fd)  # the previous holder removed this file after we opened it: lock the new one
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _still_linked(fd: int, lock: Path) -> bool:
    try:
        return os.stat(lock).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _cannot_write(folder: Path, what: str, err: OSError) -> LntuneError:
    if isinstance(err, PermissionError):
        return LntuneError(f"{folder}: permission denied (cannot write the {what} there; choose a folder you can write to)")
    return LntuneError(f"{folder}: cannot write the {what} there ({err.strerror or err})")


def _read_holder(fd: int) -> str:
    """The pid the holder wrote (it may be a moment late writing it just after taking the lock)."""
    for _ in range(20):
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if text.isdigit():
            return text
        time.sleep(0.05)
    return "unknown"


def _release(key: str) -> None:
    with _guard:
        entry = _held[key]
        entry[1] -= 1
        if entry[1]:
            return
        del _held[key]
    with contextlib.suppress(OSError):
        os.unlink(key)  # while still locked, so a waiting opener of this file sees it gone and retries
    os.close(entry[0])  # closing the only descriptor drops the flock


def locked(argument: str, what: str):
    """Decorator: hold the lock of the folder passed as `argument` while the function runs."""
    import functools
    import inspect

    def wrap(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def call(*args, **kwargs):
            with hold_lock(signature.bind(*args, **kwargs).arguments[argument], what):
                return fn(*args, **kwargs)
        return call
    return wrap
