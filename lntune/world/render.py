"""Draw a scene (scenes.Scene) as a PIL image.

Each category has a silhouette drawn in unit coordinates inside the object's bounding box: a body in the
object's colour, dark and light details (wheels, door, eye, highlight), and an outline that keeps every
colour readable on every background. Drawing happens at SUPERSAMPLE x the image size and is reduced with
a box filter, so edges are smooth and the output is byte-identical for the same scene.

    python -c "import random; from lntune.world.scenes import sample_scene; from lntune.world.render import \
render_scene; render_scene(sample_scene(random.Random(1), 2, 64, 4), 64).resize((256, 256)).show()"
"""

from __future__ import annotations

import math

from PIL import Image, ImageDraw, ImageFilter

from lntune.world.scenes import COLORS, Scene

SUPERSAMPLE = 4
DARK = (45, 45, 50)
LIGHT = (250, 250, 245)
OUTLINE = {"night": (235, 235, 225)}  # other backgrounds get a dark outline
OUTLINE_DEFAULT = (40, 40, 45)


class _Pen:
    """Draws onto three masks (body, dark, light) with coordinates in the unit square of one box."""

    def __init__(self, size):
        self.size = size
        self.masks = {k: Image.new("L", (size, size), 0) for k in ("body", "dark", "light")}
        self.draws = {k: ImageDraw.Draw(m) for k, m in self.masks.items()}

    def _pt(self, x, y):
        return (x * (self.size - 1), y * (self.size - 1))

    def poly(self, points, part="body", fill=255):
        self.draws[part].polygon([self._pt(x, y) for x, y in points], fill=fill)

    def ellipse(self, x0, y0, x1, y1, part="body", fill=255):
        self.draws[part].ellipse([*self._pt(x0, y0), *self._pt(x1, y1)], fill=fill)

    def rect(self, x0, y0, x1, y1, part="body", fill=255):
        self.draws[part].rectangle([*self._pt(x0, y0), *self._pt(x1, y1)], fill=fill)

    def ring(self, x0, y0, x1, y1, width, part="body"):
        self.draws[part].ellipse([*self._pt(x0, y0), *self._pt(x1, y1)], outline=255,
                                 width=max(1, round(width * self.size)))

    def line(self, points, width, part="body"):
        self.draws[part].line([self._pt(x, y) for x, y in points], fill=255, width=max(1, round(width * self.size)))


def _ball(p):
    p.ellipse(0.04, 0.04, 0.96, 0.96)
    p.ellipse(0.24, 0.22, 0.42, 0.40, part="light")


def _box(p):
    p.rect(0.06, 0.30, 0.72, 0.96)  # front
    p.poly([(0.06, 0.30), (0.30, 0.06), (0.96, 0.06), (0.72, 0.30)], part="light")  # top
    p.poly([(0.72, 0.30), (0.96, 0.06), (0.96, 0.72), (0.72, 0.96)])  # side
    p.line([(0.72, 0.30), (0.72, 0.96)], 0.04, part="dark")


def _cup(p):
    p.poly([(0.08, 0.18), (0.72, 0.18), (0.62, 0.96), (0.18, 0.96)])
    p.ring(0.52, 0.30, 0.96, 0.74, 0.11)
    p.rect(0.08, 0.18, 0.72, 0.26, part="dark")


def _tree(p):
    p.poly([(0.5, 0.02), (0.94, 0.76), (0.06, 0.76)])
    p.rect(0.40, 0.74, 0.60, 0.98, part="dark")


def _car(p):
    p.poly([(0.22, 0.42), (0.32, 0.14), (0.70, 0.14), (0.82, 0.42)])  # cabin
    p.rect(0.02, 0.40, 0.98, 0.76)  # body
    p.poly([(0.30, 0.40), (0.37, 0.21), (0.49, 0.21), (0.49, 0.40)], part="light")
    p.poly([(0.54, 0.40), (0.54, 0.21), (0.66, 0.21), (0.74, 0.40)], part="light")
    p.ellipse(0.12, 0.62, 0.38, 0.90, part="dark")
    p.ellipse(0.62, 0.62, 0.88, 0.90, part="dark")


def _house(p):
    p.rect(0.14, 0.46, 0.86, 0.98)
    p.poly([(0.0, 0.50), (0.5, 0.04), (1.0, 0.50)])
    p.rect(0.42, 0.68, 0.60, 0.98, part="dark")
    p.rect(0.22, 0.56, 0.36, 0.70, part="light")


def _fish(p):
    p.ellipse(0.02, 0.22, 0.74, 0.78)
    p.poly([(0.64, 0.50), (0.98, 0.18), (0.98, 0.82)])
    p.ellipse(0.14, 0.38, 0.26, 0.50, part="dark")


def _star(p):
    pts = []
    for k in range(10):
        r = 0.48 if k % 2 == 0 else 0.20
        a = -math.pi / 2 + k * math.pi / 5
        pts.append((0.5 + r * math.cos(a), 0.53 + r * math.sin(a)))
    p.poly(pts)


def _heart(p):
    p.ellipse(0.04, 0.10, 0.52, 0.58)
    p.ellipse(0.48, 0.10, 0.96, 0.58)
    p.poly([(0.07, 0.45), (0.93, 0.45), (0.5, 0.95)])


def _moon(p):
    p.ellipse(0.04, 0.04, 0.96, 0.96)
    p.ellipse(0.30, -0.06, 1.16, 0.80, fill=0)


def _umbrella(p):
    p.draws["body"].pieslice([*p._pt(0.02, 0.08), *p._pt(0.98, 0.92)], 180, 360, fill=255)
    p.line([(0.5, 0.48), (0.5, 0.86)], 0.07, part="dark")
    p.draws["dark"].arc([*p._pt(0.34, 0.74), *p._pt(0.52, 0.96)], 0, 180, fill=255,
                        width=max(1, round(0.07 * p.size)))


def _kite(p):
    p.poly([(0.42, 0.02), (0.78, 0.34), (0.42, 0.76), (0.06, 0.34)])
    p.line([(0.42, 0.02), (0.42, 0.76)], 0.03, part="dark")
    p.line([(0.06, 0.34), (0.78, 0.34)], 0.03, part="dark")
    p.line([(0.42, 0.76), (0.56, 0.84), (0.46, 0.92), (0.62, 0.98)], 0.04, part="dark")


def _boat(p):
    p.poly([(0.02, 0.62), (0.98, 0.62), (0.80, 0.92), (0.20, 0.92)])
    p.poly([(0.54, 0.06), (0.54, 0.56), (0.90, 0.56)], part="light")
    p.line([(0.50, 0.04), (0.50, 0.62)], 0.05, part="dark")


def _flower(p):
    for k in range(5):
        a = -math.pi / 2 + k * 2 * math.pi / 5
        cx, cy = 0.5 + 0.27 * math.cos(a), 0.5 + 0.27 * math.sin(a)
        p.ellipse(cx - 0.22, cy - 0.22, cx + 0.22, cy + 0.22)
    p.ellipse(0.36, 0.36, 0.64, 0.64, part="dark")


SHAPES = {
    "ball": _ball, "box": _box, "cup": _cup, "tree": _tree, "car": _car, "house": _house, "fish": _fish,
    "star": _star, "heart": _heart, "moon": _moon, "umbrella": _umbrella, "kite": _kite, "boat": _boat,
    "flower": _flower,
}


def _background(name: str, size: int) -> Image.Image:
    if name == "grass":
        img = Image.new("RGB", (size, size), (214, 232, 246))
        ImageDraw.Draw(img).rectangle([0, int(size * 0.3), size, size], fill=(200, 232, 186))
        return img
    if name == "water":
        img = Image.new("RGB", (size, size), (190, 216, 242))
        draw = ImageDraw.Draw(img)
        for k in range(1, 8):
            y = int(size * k / 8)
            draw.line([(0, y), (size, y)], fill=(214, 232, 250), width=max(1, size // 64))
        return img
    if name == "night":
        return Image.new("RGB", (size, size), (30, 34, 70))
    return Image.new("RGB", (size, size), (236, 236, 236))


_ANY = [0] + [255] * 255


def _shade(rgb, factor):
    return tuple(min(255, int(c * factor)) for c in rgb)


def render_scene(scene: Scene, image_size: int) -> Image.Image:
    """The scene as an RGB image of image_size x image_size pixels."""
    s = SUPERSAMPLE
    canvas = _background(scene.background, image_size * s)
    outline = OUTLINE.get(scene.background, OUTLINE_DEFAULT)
    for obj in scene.objects:
        x0, y0, x1, y1 = (v * s for v in obj.bbox)
        side = x1 - x0
        pen = _Pen(side)
        SHAPES[obj.category](pen)
        silhouette = Image.new("L", (side, side), 0)
        for mask in pen.masks.values():
            silhouette.paste(255, (0, 0), mask)
        pad = 2 * s
        padded = Image.new("L", (side + 2 * pad, side + 2 * pad), 0)
        padded.paste(silhouette, (pad, pad))
        # Dilation by a box blur + threshold: as good as a max filter here, and ~10x faster.
        border = padded.filter(ImageFilter.BoxBlur(s // 2)).point(_ANY)
        canvas.paste(outline, (x0 - pad, y0 - pad, x1 + pad, y1 + pad), border)
        color = COLORS[obj.color]
        canvas.paste(color, (x0, y0, x1, y1), pen.masks["body"])
        canvas.paste(_shade(color, 0.45) if obj.color != "brown" else DARK, (x0, y0, x1, y1), pen.masks["dark"])
        canvas.paste(_lighten(color), (x0, y0, x1, y1), pen.masks["light"])
    return canvas.reduce(s)


def _lighten(rgb):
    return tuple(int(c + (255 - c) * 0.55) for c in rgb)
