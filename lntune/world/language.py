"""English for the synthetic world: noun phrases, positions, and captions in two styles.

- `coco_caption`: short and plain, like MS-COCO ("A red ball next to a green tree.").
- `flickr_caption`: longer, with verbs and scene-setting, like Flickr30k ("A small red ball rests in the
  top left while a large green tree stands in the bottom right, out on the grass.").
- `detailed_description`: a paragraph naming every object with colour, size and position.

Every function takes a `random.Random`, so wording varies but is reproducible for a seed.

    python -c "import random; from lntune.world.scenes import sample_scene; from lntune.world import language; \
s = sample_scene(random.Random(3), 2, 64, 4); print(language.coco_caption(s, random.Random(0))); \
print(language.flickr_caption(s, random.Random(0)))"
"""

from __future__ import annotations

import random
import re
from collections import Counter

from lntune.world.scenes import Scene, WorldObject

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

PLURALS = {"box": "boxes", "fish": "fish"}

# (singular, plural) verb phrases per category, for the Flickr30k-style captions.
VERBS = {
    "ball": [("rests", "rest"), ("sits", "sit"), ("lies", "lie")],
    "box": [("sits", "sit"), ("rests", "rest")],
    "cup": [("sits", "sit"), ("stands", "stand")],
    "tree": [("stands", "stand"), ("grows", "grow")],
    "car": [("is parked", "are parked"), ("waits", "wait")],
    "house": [("stands", "stand")],
    "fish": [("swims", "swim")],
    "star": [("shines", "shine"), ("glows", "glow")],
    "heart": [("floats", "float"), ("hangs", "hang")],
    "moon": [("glows", "glow"), ("shines", "shine")],
    "umbrella": [("stands open", "stand open"), ("is open", "are open")],
    "kite": [("flies", "fly"), ("soars", "soar")],
    "boat": [("floats", "float"), ("sails", "sail")],
    "flower": [("blooms", "bloom"), ("grows", "grow")],
}

BACKGROUND_PHRASES = {
    "plain": ["on a plain background", "on a gray background", "against a plain gray backdrop"],
    "grass": ["on the grass", "on a grassy field", "on green grass under a pale sky"],
    "water": ["on the water", "on blue water", "in the sea"],
    "night": ["at night", "in the night sky", "on a dark night"],
}
BACKGROUND_NOUNS = {"plain": "plain", "grass": "grass", "water": "water", "night": "night sky"}


def number_word(n: int) -> str:
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


def plural(noun: str, n: int = 2) -> str:
    if n == 1:
        return noun
    return PLURALS.get(noun, noun + "s")


def article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def join_list(items: list[str], conj: str = "and") -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {conj} " + items[-1]


def position_phrase(position: str) -> str:
    """'in the top left', 'on the left', 'in the center', ..."""
    if " " in position:
        return f"in the {position}"
    if position in ("left", "right"):
        return f"on the {position}"
    if position in ("top", "bottom"):
        return f"at the {position}"
    return "in the center"


def noun_phrase(obj: WorldObject, size: bool = True, color: bool = True) -> str:
    """'small red ball' (no article)."""
    words = ([obj.size] if size else []) + ([obj.color] if color else []) + [obj.category]
    return " ".join(words)


def groups(scene: Scene) -> list[tuple[str, str, int, list[WorldObject]]]:
    """Objects grouped by (category, colour) in order of appearance: (category, colour, count, objects)."""
    seen: dict[tuple[str, str], list[WorldObject]] = {}
    for o in scene.objects:
        seen.setdefault((o.category, o.color), []).append(o)
    return [(cat, col, len(objs), objs) for (cat, col), objs in seen.items()]


def group_phrase(cat: str, color: str, n: int, objs: list[WorldObject], with_size: bool) -> str:
    """'a small red ball' / 'two red balls' / 'two large red balls'."""
    sizes = {o.size for o in objs}
    words = ([objs[0].size] if with_size and len(sizes) == 1 else []) + [color, plural(cat, n)]
    phrase = " ".join(words)
    return article(phrase) if n == 1 else f"{number_word(n)} {phrase}"


def inventory(scene: Scene, rng: random.Random, with_size: bool | None = None) -> str:
    """All objects as one list: 'a red ball, two green trees and a small blue car'."""
    with_size = rng.random() < 0.4 if with_size is None else with_size
    parts = [group_phrase(cat, col, n, objs, with_size) for cat, col, n, objs in groups(scene)]
    return join_list(parts)


def distinct_by(scene: Scene, keys: tuple[str, ...] = ("category",)) -> list[WorldObject]:
    """Objects that "the <those attributes> <category>" names unambiguously, e.g. the only red ball."""
    count = Counter(tuple(getattr(o, k) for k in keys) for o in scene.objects)
    return [o for o in scene.objects if count[tuple(getattr(o, k) for k in keys)] == 1]


def relation(a: WorldObject, b: WorldObject) -> str | None:
    """Where a is relative to b: 'to the left of', 'above', ... (columns first); None if same cell."""
    if a.cell[1] != b.cell[1]:
        return "to the left of" if a.cell[1] < b.cell[1] else "to the right of"
    if a.cell[0] != b.cell[0]:
        return "above" if a.cell[0] < b.cell[0] else "below"
    return None


def _finish(text: str, rng: random.Random, casual: bool) -> str:
    """COCO captions are typed by people: sometimes no capital, sometimes no final period."""
    text = capitalize(text)
    if casual and rng.random() < 0.15:
        text = text[0].lower() + text[1:]
    if not (casual and rng.random() < 0.2):
        text += "."
    return text


def coco_caption(scene: Scene, rng: random.Random) -> str:
    """A short plain caption in MS-COCO's style."""
    objs = scene.objects
    bg = rng.choice(BACKGROUND_PHRASES[scene.background])
    items = inventory(scene, rng)
    options = [
        lambda: items,
        lambda: f"{items} {bg}",
        lambda: f"a picture of {items}",
        lambda: f"an image with {items}",
    ]
    if len(objs) == 1:
        o = objs[0]
        options += [
            lambda: f"{article(noun_phrase(o, size=rng.random() < 0.5))} {position_phrase(o.position)}",
            lambda: f"{article(noun_phrase(o))} {bg}",
            lambda: f"there is {article(noun_phrase(o, size=False))} {position_phrase(o.position)}",
        ]
    if len(objs) == 2 and objs[0].category != objs[1].category:
        a, b = objs
        rel = relation(a, b)
        options += [
            lambda: f"{article(noun_phrase(a, size=False))} next to {article(noun_phrase(b, size=False))}",
            lambda: f"{article(noun_phrase(a, size=False))} {rel} {article(noun_phrase(b, size=False))}",
            lambda: f"{article(noun_phrase(a))} and {article(noun_phrase(b))} {bg}",
        ]
    if len(objs) >= 3:
        options += [lambda: f"a group of {number_word(len(objs))} objects: {items}",
                    lambda: f"{items} together {bg}"]
    return _finish(rng.choice(options)(), rng, casual=True)


def _verb(cat: str, n: int, rng: random.Random) -> str:
    singular, plural_form = rng.choice(VERBS[cat])
    return singular if n == 1 else plural_form


def _clause(cat, col, n, objs, rng):
    subject = group_phrase(cat, col, n, objs, with_size=True)
    where = position_phrase(objs[0].position) if n == 1 else rng.choice(["nearby", "side by side", "together"])
    return f"{subject} {_verb(cat, n, rng)} {where}"


def flickr_caption(scene: Scene, rng: random.Random) -> str:
    """A longer, livelier caption in Flickr30k's style, with a verb for every object."""
    clauses = [_clause(*g, rng) for g in groups(scene)]
    rng.shuffle(clauses)
    bg = rng.choice(BACKGROUND_PHRASES[scene.background])
    if len(clauses) == 1:
        body = clauses[0]
    elif len(clauses) == 2:
        body = f"{clauses[0]} {rng.choice(['while', 'and', 'as'])} {clauses[1]}"
    else:
        body = f"{', '.join(clauses[:-1])}, and {clauses[-1]}"
    openers = ["", "", "in this picture, ", "in this scene, ", "here "]
    opener = rng.choice(openers)
    if opener == "here ":
        body = f"here we see {inventory(scene, rng, with_size=True)} {bg}"
        return _finish(body, rng, casual=False)
    tail = rng.choice([f", {bg}", f" {bg}", ""])
    return _finish(opener + body + tail, rng, casual=False)


def detailed_description(scene: Scene, rng: random.Random) -> str:
    """A paragraph: overview, every object with colour, size and position, relations, background."""
    n = len(scene.objects)
    kinds = len(scene.categories())
    bg_noun = BACKGROUND_NOUNS[scene.background]
    opening = rng.choice([
        f"The image shows {number_word(n)} object{'s' if n > 1 else ''} on a {bg_noun} background.",
        f"This picture contains {number_word(n)} object{'s' if n > 1 else ''} "
        f"({number_word(kinds)} kind{'s' if kinds > 1 else ''}), set {rng.choice(BACKGROUND_PHRASES[scene.background])}.",
        f"In this image there {'is one object' if n == 1 else f'are {number_word(n)} objects'}, "
        f"shown {rng.choice(BACKGROUND_PHRASES[scene.background])}.",
    ])
    sentences = [opening]
    for o in scene.objects:
        sentences.append(rng.choice([
            f"{capitalize(position_phrase(o.position))} there is {article(noun_phrase(o))}.",
            f"{capitalize(article(noun_phrase(o)))} is {position_phrase(o.position)}.",
            f"{capitalize(position_phrase(o.position))} we can see {article(noun_phrase(o))}.",
        ]))
    nameable = distinct_by(scene, ("color", "category"))
    if len(nameable) >= 2:
        a, b = rng.sample(nameable, 2)
        sentences.append(f"The {noun_phrase(a, size=False)} is {relation(a, b)} the {noun_phrase(b, size=False)}.")
    colors = Counter(o.color for o in scene.objects)
    if n >= 2:
        if len(colors) == 1:
            sentences.append(f"All of the objects are {scene.objects[0].color}.")
        else:
            sentences.append(f"The colors in the scene are {join_list(list(colors))}.")
        sizes = Counter(o.size for o in scene.objects)
        if len(sizes) == 1:
            sentences.append(f"Every object is {scene.objects[0].size}.")
        else:
            sentences.append(f"{capitalize(number_word(sizes['large']))} of them "
                             f"{'is' if sizes['large'] == 1 else 'are'} large and "
                             f"{number_word(sizes['small'])} {'is' if sizes['small'] == 1 else 'are'} small.")
    return " ".join(sentences)


def tokens(text: str) -> list[str]:
    """Karpathy-style tokens: lowercase words and numbers, punctuation dropped."""
    return re.findall(r"[a-z0-9]+", text.lower())
