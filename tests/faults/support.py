"""What every fault test needs: run the CLI (in this process, or in a child with a file-size limit), check that
it failed with exactly one `lntune: error:` line and exit status 2, and check that nothing outside the
command's own output changed (SHA-256 of every neighbouring file before and after)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
ENV.pop("LNTUNE_DEBUG", None)


def snapshot(root: Path, skip=()) -> dict[str, str]:
    """{relative path: SHA-256} of every file below `root`, leaving out the folders in `skip`."""
    root = Path(root)
    skipped = [Path(s).resolve() for s in skip]
    hashes = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        if any(path.resolve().is_relative_to(s) for s in skipped):
            continue
        hashes[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def cli(*argv) -> tuple[int, str]:
    """(exit status, stderr) of `lntune ARGV` run in this process."""
    from lntune.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main([str(a) for a in argv])
    return status, err.getvalue()


def cli_child(*argv, max_file_bytes: int | None = None, cwd=None, env=None) -> tuple[int, str]:
    """(exit status, stderr) of `lntune ARGV` in a child process, its files limited to `max_file_bytes` (a
    write past it fails with EFBIG, as a full disk fails with ENOSPC)."""
    code = ("import resource, signal, sys\n"
            "limit = int(sys.argv[1])\n"
            "if limit >= 0:\n"
            "    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
            "from lntune.cli import main\n"
            "sys.exit(main(sys.argv[2:]))\n")
    limit = -1 if max_file_bytes is None else max_file_bytes
    proc = subprocess.run([sys.executable, "-c", code, str(limit), *map(str, argv)], capture_output=True, text=True,
                          env=env or ENV, cwd=cwd, timeout=300)
    return proc.returncode, proc.stderr


def assert_one_error(status: int, err: str, *fragments: str) -> str:
    """The error line, once it is known to be the only one, the last thing printed, with exit status 2 and no
    traceback; every fragment must appear in it."""
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("lntune: error:")]
    assert status == 2, err
    assert "Traceback" not in err, err
    assert len(errors) == 1 and lines[-1] == errors[0], err
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def dead_pid() -> int:
    """The pid of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
