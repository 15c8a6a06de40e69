"""One line for a failure that comes from the machine or the files around a command, not from lntune's own code.

    line = describe_failure(err)     # "runs/x/optimizer.pt: No space left on device", or None for a bug

The CLI (lntune/cli.py) prints LntuneError and these as `lntune: error: ...` and exits with status 2: a full
disk, a read-only or unwritable folder, a file that vanished, a file too large for its process, memory
exhausted, input nested too deep to parse, an image too large to decode. Anything else is a bug and keeps
its traceback. `lntune --debug COMMAND` or LNTUNE_DEBUG=1 shows the traceback of every failure.
"""

from __future__ import annotations

import errno
import os

DEBUG_ENV = "LNTUNE_DEBUG"


def debug_wanted(flag: bool = False) -> bool:
    return flag or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def describe_failure(err: BaseException) -> str | None:
    """The one line for `err`, or None when it is not a failure of the machine or the files (a bug)."""
    if isinstance(err, OSError):
        return _os_error(err)
    if isinstance(err, MemoryError):
        return "out of memory (an input far larger than expected? see the command's inputs)"
    if isinstance(err, RecursionError):
        return "an input is nested too deeply to read (a JSON or YAML file with thousands of levels?)"
    decompression_bomb = _pil_bomb()
    if decompression_bomb is not None and isinstance(err, decompression_bomb):
        return f"an image is too large to decode safely ({_first_line(err)})"
    if isinstance(err, RuntimeError) and _is_write_failure(str(err)):
        return f"cannot write a file: {_first_line(err)} (a full disk, or a file size limit?)"
    if type(err).__name__ == "SafetensorError" and "I/O error" in str(err):
        return f"cannot write a safetensors file: {_first_line(err)}"
    return None


def failed_write(target, err: BaseException):
    """A LntuneError naming `target` for a write that failed on the machine's side (else None: a bug)."""
    from lntune.errors import LntuneError

    line = describe_failure(err)
    if line is None:
        return None
    return LntuneError(f"{target}: not written: {line}; nothing was replaced")


_WORDS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
          errno.EROFS: "read-only file system", errno.EACCES: "permission denied", errno.EPERM: "permission denied",
          errno.EFBIG: "file too large (a file size limit?)", errno.ENOENT: "no such file or folder",
          errno.EISDIR: "is a folder, not a file", errno.ENOTDIR: "not a folder", errno.EIO: "input/output error"}


def _os_error(err: OSError) -> str:
    what = _WORDS.get(err.errno, err.strerror or _first_line(err) or type(err).__name__)
    where = err.filename if err.filename is not None else None
    if where is not None and getattr(err, "filename2", None):
        where = f"{where} -> {err.filename2}"
    return f"{where}: {what}" if where is not None else f"{what} ({_first_line(err)})"


def _is_write_failure(text: str) -> bool:
    """torch.save reports a failed write as RuntimeError ("PytorchStreamWriter failed writing file ...")."""
    return "failed writing file" in text or "file write failed" in text or "unexpected pos" in text


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def _pil_bomb():
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        return None
    return Image.DecompressionBombError
