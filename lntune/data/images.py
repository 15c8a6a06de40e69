"""Safe image access for LLaVA data: paths stay inside the image folder, files are real images.

`resolve_image(folder, rel)` rejects absolute paths, `..` escapes and symlinks resolving outside the folder;
`image_problem` checks a file (header only, or fully decoded with decode=True, as a dataset does when it is
built); `load_image` decodes it as RGB.
PIL's decompression-bomb guard stays on: an image over Image.MAX_IMAGE_PIXELS * 2 is an error.

    python -c "from lntune.data.images import load_image; print(load_image('images', 'a.png').size)"
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

from lntune.errors import LntuneError, shown


def check_relative(rel: str) -> None:
    """LntuneError when `rel` is absolute or climbs out with `..` (a check on the text alone)."""
    if not isinstance(rel, str) or not rel or "\x00" in rel:
        raise LntuneError(f"image path {shown(rel)} is not a file name (empty, not text, or holding a NUL byte)")
    if PurePosixPath(rel).is_absolute() or PureWindowsPath(rel).is_absolute() or PureWindowsPath(rel).drive:
        raise LntuneError(f"image path {rel!r} is absolute; paths must be relative to the image folder")
    if ".." in PurePosixPath(rel.replace("\\", "/")).parts:
        raise LntuneError(f"image path {rel!r} escapes the image folder (..)")


def resolve_image(folder: str | Path, rel: str) -> Path:
    """The file `rel` names inside `folder`; LntuneError when it is absolute or escapes the folder."""
    check_relative(rel)
    root = Path(folder).resolve()
    path = (root / rel).resolve()
    if not path.is_relative_to(root):
        raise LntuneError(f"image path {rel!r} resolves outside the image folder (symlink to {path})")
    return path


def image_problem(folder: str | Path, rel: str, decode: bool = False) -> str | None:
    """What is wrong with an image reference, or None. Reads the header only unless `decode` is set."""
    from PIL import Image

    try:
        path = resolve_image(folder, rel)
    except LntuneError as err:
        return str(err)
    if not path.is_file():
        return f"missing image file {rel!r} (looked in {Path(folder)})"
    try:
        with Image.open(path) as img:
            if decode:
                img.load()
    except Image.DecompressionBombError as err:
        return f"unreadable image {rel!r}: {err}"
    except (OSError, SyntaxError, ValueError) as err:
        return f"unreadable image {rel!r}: {err}"
    return None


def load_image(folder: str | Path, rel: str):
    """The image `rel` in `folder` as an RGB PIL image; LntuneError when it is missing, outside or unreadable."""
    from PIL import Image

    path = resolve_image(folder, rel)
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise LntuneError(f"missing image file {rel!r} (looked in {Path(folder)})") from None
    except (Image.DecompressionBombError, OSError, SyntaxError, ValueError) as err:
        raise LntuneError(f"unreadable image {rel!r}: {err}") from None
