"""What the synthetic world contains: object categories, colours, sizes, grid positions, backgrounds, and
the sampler that draws a scene (pure data and `random.Random`; drawing is in render.py).

Objects co-occur non-uniformly, as on COCO: a scene first picks a *theme* (street, park, sea, night,
home, party), and each theme favours a few categories (cars with houses, fish with boats, stars with
the moon). POPE's "popular" and "adversarial" negatives therefore mean what they mean on COCO.

    python -c "import random; from lntune.world.scenes import sample_scene; \
print(sample_scene(random.Random(0), grid=2, image_size=64, max_objects=4))"
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

CATEGORIES = (
    "ball", "box", "cup", "tree", "car", "house", "fish",
    "star", "heart", "moon", "umbrella", "kite", "boat", "flower",
)

# Fill colours (RGB), far apart from each other and from every background.
COLORS = {
    "red": (214, 39, 40),
    "orange": (247, 140, 20),
    "yellow": (240, 212, 30),
    "green": (44, 160, 60),
    "blue": (40, 92, 220),
    "purple": (140, 62, 190),
    "pink": (246, 128, 190),
    "brown": (132, 82, 42),
}

SIZES = ("small", "large")

BACKGROUNDS = ("plain", "grass", "water", "night")

# theme: (weight, category weights, the theme's own background)
THEMES = {
    "street": (3.0, {"car": 5, "house": 4, "tree": 3, "umbrella": 1, "ball": 1}, "grass"),
    "park": (3.0, {"tree": 4, "kite": 3, "ball": 3, "flower": 3, "umbrella": 1}, "grass"),
    "home": (3.0, {"cup": 4, "box": 4, "heart": 2, "flower": 2, "ball": 1}, "plain"),
    "sea": (2.0, {"fish": 5, "boat": 4, "star": 1, "moon": 1}, "water"),
    "night": (1.5, {"star": 5, "moon": 4, "house": 1, "tree": 1}, "night"),
    "party": (1.5, {"heart": 4, "box": 3, "star": 2, "cup": 2, "kite": 1}, "plain"),
}

# A mild colour habit per category (trees are often green); other colours stay common.
USUAL_COLOR = {"tree": "green", "fish": "orange", "star": "yellow", "moon": "yellow", "heart": "red",
               "house": "brown", "flower": "pink", "boat": "blue"}
USUAL_COLOR_P = 0.35

OBJECT_COUNT_WEIGHTS = {1: 0.15, 2: 0.25, 3: 0.30, 4: 0.30}
REPEAT_P = 0.15  # chance that a further object repeats a category already in the scene (for counting)
STRAY_P = 0.1  # chance that an object ignores the theme and is drawn uniformly
THEME_BACKGROUND_P = 0.5

_ROWS = {2: ("top", "bottom"), 3: ("top", "middle", "bottom")}
_COLS = {2: ("left", "right"), 3: ("left", "center", "right")}


def position_name(cell: tuple[int, int], grid: int) -> str:
    """'top left', 'bottom right', ...; on a 3x3 grid also 'top', 'left', 'center', ..."""
    row, col = _ROWS[grid][cell[0]], _COLS[grid][cell[1]]
    if row == "middle" and col == "center":
        return "center"
    if row == "middle":
        return col
    if col == "center":
        return row
    return f"{row} {col}"


def position_names(grid: int) -> list[str]:
    return [position_name((r, c), grid) for r in range(grid) for c in range(grid)]


@dataclass(frozen=True)
class WorldObject:
    category: str
    color: str
    size: str
    position: str
    cell: tuple[int, int]
    bbox: tuple[int, int, int, int]
    """(x0, y0, x1, y1) in image pixels, x1/y1 exclusive."""


@dataclass
class Scene:
    image_id: int
    file: str
    """Path relative to DIR/images/."""
    pool: str
    """'train', or the benchmark whose evaluation images it belongs to (e.g. 'pope', 'mme/count')."""
    theme: str
    background: str
    objects: list[WorldObject] = field(default_factory=list)

    @property
    def split(self) -> str:
        return "train" if self.pool == "train" else "eval"

    def categories(self) -> list[str]:
        """Distinct categories, in object order."""
        return list(dict.fromkeys(o.category for o in self.objects))

    def count(self, category: str) -> int:
        return sum(o.category == category for o in self.objects)

    @classmethod
    def from_json(cls, entry: dict) -> "Scene":
        """The inverse of to_json (one entry of world.json's "images")."""
        objs = [WorldObject(o["category"], o["color"], o["size"], o["position"], tuple(o["cell"]), tuple(o["bbox"]))
                for o in entry["objects"]]
        return cls(entry["image_id"], entry["file"], entry["pool"], entry["theme"], entry["background"], objs)

    def to_json(self) -> dict:
        objects = []
        for o in self.objects:
            d = asdict(o)
            d["cell"], d["bbox"] = list(o.cell), list(o.bbox)
            objects.append(d)
        return {"image_id": self.image_id, "file": self.file, "split": self.split, "pool": self.pool,
                "theme": self.theme, "background": self.background, "objects": objects}


def _weighted(rng: random.Random, weights: dict):
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def _bbox(rng: random.Random, cell, size, grid, image_size):
    """A box that lines up with the vision tower's patches: a large object fills its cell, a small one
    fills one quarter of it (one 16 px patch at 64 px on a 2x2 grid); both jitter by at most 1 px."""
    cell_px = image_size / grid
    if size == "large":
        side = round(cell_px * 0.875)
        x0 = cell[1] * cell_px + (cell_px - side) / 2
        y0 = cell[0] * cell_px + (cell_px - side) / 2
    else:
        half = cell_px / 2
        side = round(half * 0.875)
        x0 = cell[1] * cell_px + rng.randint(0, 1) * half + (half - side) / 2
        y0 = cell[0] * cell_px + rng.randint(0, 1) * half + (half - side) / 2
    x0, y0 = int(x0) + rng.randint(-1, 1), int(y0) + rng.randint(-1, 1)
    x0 = min(max(x0, 0), image_size - side)
    y0 = min(max(y0, 0), image_size - side)
    return (x0, y0, x0 + side, y0 + side)


def sample_scene(rng: random.Random, grid: int, image_size: int, max_objects: int, n_objects: int | None = None,
                 image_id: int = 0, file: str = "", pool: str = "train") -> Scene:
    """Draw one scene: a theme, a background, 1..max_objects objects in distinct grid cells."""
    theme = _weighted(rng, {k: v[0] for k, v in THEMES.items()})
    _, category_weights, theme_background = THEMES[theme]
    background = theme_background if rng.random() < THEME_BACKGROUND_P else "plain"
    if n_objects is None:
        n_objects = _weighted(rng, {k: v for k, v in OBJECT_COUNT_WEIGHTS.items() if k <= max_objects})
    cells = rng.sample([(r, c) for r in range(grid) for c in range(grid)], n_objects)
    objects: list[WorldObject] = []
    for cell in cells:
        if objects and rng.random() < REPEAT_P:
            category = rng.choice(objects).category
        else:
            for _ in range(3):  # a theme favours few categories: retry a little before repeating one
                category = rng.choice(CATEGORIES) if rng.random() < STRAY_P else _weighted(rng, category_weights)
                if all(o.category != category for o in objects):
                    break
        usual = USUAL_COLOR.get(category)
        color = usual if usual and rng.random() < USUAL_COLOR_P else rng.choice(list(COLORS))
        size = rng.choice(SIZES)
        objects.append(WorldObject(category, color, size, position_name(cell, grid), cell,
                                   _bbox(rng, cell, size, grid, image_size)))
    return Scene(image_id=image_id, file=file, pool=pool, theme=theme, background=background, objects=objects)


def category_statistics(scenes: list[Scene]) -> dict:
    """POPE's statistics over a set of scenes: in how many images each category appears, and for each
    category how many images also contain each other category. Orders follow CATEGORIES."""
    counts = {c: 0 for c in CATEGORIES}
    cooccur = {c: {d: 0 for d in CATEGORIES if d != c} for c in CATEGORIES}
    for scene in scenes:
        present = scene.categories()
        for c in present:
            counts[c] += 1
            for d in present:
                if d != c:
                    cooccur[c][d] += 1
    return {"images": len(scenes), "category_counts": counts, "cooccurrence": cooccur}


def by_frequency(counts: dict) -> list[str]:
    """Categories from most to least frequent; ties keep the order of CATEGORIES."""
    return sorted(counts, key=lambda c: (-counts[c], CATEGORIES.index(c)))
