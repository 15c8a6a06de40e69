"""The image of a chat request: a `data:` URL (base64 PNG, JPEG, WebP, GIF or BMP), or a local file inside the
server's --image-root (a path relative to it, an absolute path, or a file:// URL). Remote URLs are not fetched.

    image = load_image(url, image_root=Path("photos"), max_bytes=10 * 2**20)   # a PIL RGB image, or ApiError
"""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path
from urllib.parse import unquote, urlparse

from lntune.serve.api_errors import ApiError

PARAM = "messages[].content[].image_url"
MAX_PIXELS = 40_000_000  # decoding is refused past this, whatever the file size (a small PNG can hold a huge image)


def load_image(url: str, image_root: Path | None, max_bytes: int):
    """The RGB PIL image at `url`; an ApiError (4xx) for a URL that is not an allowed, readable image."""
    if not isinstance(url, str) or not url:
        raise ApiError(400, "image_url.url must be a non-empty string", param=PARAM, code="invalid_image_url")
    if url.startswith("data:"):
        return _decode(_data_url_bytes(url, max_bytes), "the data: URL")
    if url.startswith(("http://", "https://")):
        raise ApiError(400, "lntune serve does not fetch remote images; send the image as a data: URL "
                       "(data:image/png;base64,...)", param=PARAM, code="unsupported_image_url")
    path = _local_path(url, image_root)
    if path.stat().st_size > max_bytes:
        raise _too_large(path.stat().st_size, max_bytes)
    return _decode(path.read_bytes(), f"image file {url!r}")


def _data_url_bytes(url: str, max_bytes: int) -> bytes:
    header, comma, payload = url[len("data:"):].partition(",")
    if not comma:
        raise ApiError(400, "malformed data: URL (expected data:image/png;base64,...)", param=PARAM,
                       code="invalid_image_url")
    media_type, *options = header.split(";")
    if not media_type.lower().startswith("image/"):
        raise ApiError(400, f"the data: URL holds {media_type or 'text/plain'!r}, not an image "
                       "(expected image/png, image/jpeg, ...)", param=PARAM, code="invalid_image_url")
    if "base64" not in (o.lower() for o in options):
        raise ApiError(400, "the image data: URL must be base64-encoded (data:image/png;base64,...)", param=PARAM,
                       code="invalid_image_url")
    if len(payload) * 3 // 4 > max_bytes + 2:
        raise _too_large(len(payload) * 3 // 4, max_bytes)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "the image data: URL is not valid base64", param=PARAM, code="invalid_image_url") from None
    if len(data) > max_bytes:
        raise _too_large(len(data), max_bytes)
    return data


def _local_path(url: str, image_root: Path | None) -> Path:
    if image_root is None:
        raise ApiError(400, "local image paths are off; send a data: URL, or start lntune serve with --image-root DIR",
                       param=PARAM, code="local_images_disabled")
    given = Path(unquote(urlparse(url).path)) if url.startswith("file://") else Path(url)
    root = image_root.resolve()
    path = (given if given.is_absolute() else root / given).resolve()
    if not path.is_relative_to(root):
        raise ApiError(403, f"image path {url!r} is outside the server's --image-root", param=PARAM,
                       code="image_path_outside_root")
    if not path.is_file():
        raise ApiError(400, f"image file {url!r} does not exist under the server's --image-root", param=PARAM,
                       code="image_not_found")
    return path


def _decode(data: bytes, where: str):
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > MAX_PIXELS:
            raise ApiError(413, f"{where}: the image is {image.width}x{image.height} pixels, over the "
                           f"{MAX_PIXELS:,}-pixel limit", param=PARAM, code="image_too_large")
        return image.convert("RGB")
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, SyntaxError, ValueError) as err:
        raise ApiError(400, f"{where} is not a readable image ({type(err).__name__})", param=PARAM,
                       code="invalid_image") from None


def _too_large(size: int, max_bytes: int) -> ApiError:
    return ApiError(413, f"the image is {size:,} bytes, over the server's limit of {max_bytes:,} bytes "
                    "(--max-image-mb)", param=PARAM, code="image_too_large")
