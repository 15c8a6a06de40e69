"""Training text about a scene, in LLaVA's formats: stage-1 caption pairs and the paper's three instruct types.

- `pretrain_sample`: one instruction + one caption (LLaVA's pretrain format).
- `conversation_sample`: 2-4 short grounded question/answer turns (existence with "Yes, ..." and "No, there is no
  ..." answers in equal numbers, colour, position, count), each answered in one sentence, as LLaVA-Instruct's
  conversations are.
- `detail_sample`: one long description.
- `complex_sample`: questions that need several objects at once (compare, count by colour, remove one,
  guess the place), answered with the reasoning.

Every sample is `{"id", "image", "conversations": [{"from": "human", "value": "<image>\\n..."}, {"from": "gpt",
"value": ...}, ...]}` with `image` relative to DIR/images/.
"""

from __future__ import annotations

import random
from collections import Counter

from lntune.world import language as L
from lntune.world.scenes import CATEGORIES, COLORS, THEMES, Scene, position_names

SHORT_SUFFIXES = [
    "\nAnswer the question using a single word or phrase.",
    "\nAnswer the question using a single word or phrase.",
    " Answer with a single word or phrase.",
    " Reply in one or two words.",
    "\nGive a short answer.",
]
YESNO_SUFFIXES = [" Please answer yes or no.", " Please answer yes or no.", " Answer yes or no.",
                  "\nPlease answer yes or no."]

BRIEF_CAPTION_PROMPTS = [
    "Describe the image briefly.",
    "Provide a one-sentence caption for the provided image.",
    "Write a short caption for this picture.",
    "Give a brief description of the image.",
    "What does this image show? Answer in one short sentence.",
    "Summarize the picture in a few words.",
]
LONG_CAPTION_PROMPTS = [
    "Describe this image in one detailed sentence.",
    "Write one lively sentence describing the scene.",
    "Give a one-sentence description of what is happening in the picture.",
]
DETAIL_PROMPTS = [
    "Describe the image in detail.",
    "What do you see in this picture? Give a thorough description.",
    "Explain the contents of the image, mentioning every object.",
    "Write a detailed description of this scene.",
    "Describe everything you can see in the image, including colors, sizes and positions.",
    "Can you elaborate on what the picture shows?",
]
PRETRAIN_PROMPTS = BRIEF_CAPTION_PROMPTS + LONG_CAPTION_PROMPTS + [
    "Caption this image.",
    "What is in the picture?",
    "Tell me what the image shows.",
    "Render a clear caption of the picture.",
]

PLACES = {"street": "a street in town", "park": "a park", "home": "a room in a home", "sea": "the sea",
          "night": "a scene outdoors at night", "party": "a party"}


def _turns(pairs):
    turns = []
    for k, (q, a) in enumerate(pairs):
        turns.append({"from": "human", "value": ("<image>\n" + q) if k == 0 else q})
        turns.append({"from": "gpt", "value": a})
    return turns


def _sample(sample_id, scene, pairs):
    return {"id": sample_id, "image": scene.file, "conversations": _turns(pairs)}


def absent_category(scene: Scene, rng: random.Random) -> str:
    """An absent category; half of the time one the scene's theme makes plausible (a hard negative)."""
    present = set(scene.categories())
    tempting = [c for c in THEMES[scene.theme][1] if c not in present]
    if tempting and rng.random() < 0.5:
        return rng.choice(tempting)
    return rng.choice([c for c in CATEGORIES if c not in present])


def _yes_no(truth: bool) -> str:
    return "Yes" if truth else "No"


# Each question builder returns (question, full answer, short answer, is_yes_no) or None if it does not apply.

EXISTENCE_WORDINGS = ["Is there {} in the image?", "Is there {} in this image?", "Can you see {} in the picture?",
                      "Does the image contain {}?", "Is {} visible in this picture?"]


def q_exists(scene, rng, plain: bool = False, present: bool | None = None):
    present = rng.random() < 0.5 if present is None else present
    cat = rng.choice(scene.categories()) if present else absent_category(scene, rng)
    q = (EXISTENCE_WORDINGS[0] if plain else rng.choice(EXISTENCE_WORDINGS)).format(L.article(cat))
    objs = [o for o in scene.objects if o.category == cat]
    if len(objs) == 1:
        full = f"Yes, there is {L.article(L.noun_phrase(objs[0], size=False))} {L.position_phrase(objs[0].position)}."
    elif objs:
        full = f"Yes, there are {L.number_word(len(objs))} {L.plural(cat)} in the image."
    else:
        full = rng.choice([f"No, there is no {cat} in the image.", f"No, I don't see {L.article(cat)} here."])
    return q, full, _yes_no(bool(objs)), True


def q_count(scene, rng):
    if rng.random() < 0.25:
        n = len(scene.objects)
        q = rng.choice(["How many objects are in the image?", "How many objects can you see?",
                        "How many things are in this picture?"])
        return q, f"There {'is one object' if n == 1 else f'are {L.number_word(n)} objects'} in the image.", str(n), False
    cat = rng.choice(scene.categories()) if rng.random() < 0.85 else absent_category(scene, rng)
    n = scene.count(cat)
    q = rng.choice(["How many {} are there in the image?", "How many {} can you see?",
                    "What is the number of {} in the picture?", "How many {} are there?"]).format(L.plural(cat))
    if n == 0:
        full = f"There are no {L.plural(cat)} in the image."
    else:
        full = f"There {'is' if n == 1 else 'are'} {L.number_word(n)} {L.plural(cat, n)}."
    return q, full, str(n), False


def q_count_yes_no(scene, rng):
    cat = rng.choice(scene.categories())
    n = scene.count(cat)
    asked = n if rng.random() < 0.5 else max(1, n + rng.choice([-1, 1]) if n > 1 else n + 1)
    if asked == 1:
        q = rng.choice([f"Is there only one {cat} in the image?", f"Is there exactly one {cat} in the picture?"])
    else:
        q = rng.choice([f"Are there {L.number_word(asked)} {L.plural(cat)} in the image?",
                        f"Is there a total of {L.number_word(asked)} {L.plural(cat)} in the picture?"])
    truth = asked == n
    full = (f"Yes, there {'is exactly one' if n == 1 else f'are {L.number_word(n)}'} {L.plural(cat, n)}." if truth
            else f"No, there {'is only one' if n == 1 else f'are {L.number_word(n)}'} {L.plural(cat, n)}.")
    return q, full, _yes_no(truth), True


def q_color(scene, rng):
    objs = L.distinct_by(scene)
    if not objs:
        return None
    o = rng.choice(objs)
    q = rng.choice(["What color is the {}?", "What is the color of the {}?", "Which color does the {} have?"]
                   ).format(o.category)
    return q, f"The {o.category} is {o.color}.", o.color, False


def q_color_yes_no(scene, rng):
    o = rng.choice(scene.objects)
    colors_of_cat = {p.color for p in scene.objects if p.category == o.category}
    color = o.color if rng.random() < 0.5 else rng.choice([c for c in COLORS if c not in colors_of_cat])
    q = rng.choice([f"Is there {L.article(color + ' ' + o.category)} in the image?",
                    f"Is there {L.article(color + ' ' + o.category)} in this picture?"])
    truth = color in colors_of_cat
    full = (f"Yes, there is {L.article(color + ' ' + o.category)} {L.position_phrase(o.position)}." if truth else
            f"No, there is no {color} {o.category}; the {o.category} is {o.color}."
            if len(colors_of_cat) == 1 else f"No, there is no {color} {o.category} in the image.")
    return q, full, _yes_no(truth), True


def q_where(scene, rng):
    objs = L.distinct_by(scene)
    if not objs:
        return None
    o = rng.choice(objs)
    q = rng.choice(["Where is the {}?", "Where is the {} located in the image?", "In which part of the image is the {}?"]
                   ).format(o.category)
    return q, f"The {o.category} is {L.position_phrase(o.position)} of the image.", o.position, False


def q_what_at(scene, rng, grid):
    position = rng.choice(position_names(grid))
    q = rng.choice(["What is in the {} of the image?", "What object is in the {}?", "What can you see in the {}?"]
                   ).format(position)
    for o in scene.objects:
        if o.position == position:
            return q, f"There is {L.article(L.noun_phrase(o))} {L.position_phrase(position)}.", o.category, False
    return q, f"Nothing, the {position} of the image is empty.", "nothing", False


def q_relation(scene, rng):
    objs = L.distinct_by(scene)
    if len(objs) < 2:
        return None
    a, b = rng.sample(objs, 2)
    rel = L.relation(a, b)
    opposite = {"to the left of": "to the right of", "to the right of": "to the left of", "above": "below",
                "below": "above"}
    truth = rng.random() < 0.5
    asked = rel if truth else opposite[rel]
    q = f"Is the {a.category} {asked} the {b.category}?"
    full = (f"Yes, the {a.category} is {rel} the {b.category}." if truth
            else f"No, the {a.category} is {rel} the {b.category}.")
    return q, full, _yes_no(truth), True


def q_size(scene, rng):
    objs = L.distinct_by(scene)
    if not objs:
        return None
    o = rng.choice(objs)
    q = rng.choice(["Is the {} large or small?", "What size is the {}?", "How big is the {}, large or small?"]
                   ).format(o.category)
    return q, f"The {o.category} is {o.size}.", o.size, False


def q_background(scene, rng):
    q = rng.choice(["What is the background of the image?", "What is behind the objects?",
                    "What kind of background does the picture have?"])
    noun = L.BACKGROUND_NOUNS[scene.background]
    full = {"plain": "The background is plain gray.", "grass": "The objects are on green grass under a pale sky.",
            "water": "The background is blue water.", "night": "The background is a dark night sky."}[scene.background]
    return q, full, noun, False


QUESTIONS = {
    "exists": (q_exists, 4.0), "count": (q_count, 2.0), "count_yes_no": (q_count_yes_no, 1.0),
    "color": (q_color, 2.0), "color_yes_no": (q_color_yes_no, 1.5), "where": (q_where, 1.5),
    "what_at": (q_what_at, 1.5), "relation": (q_relation, 1.0), "size": (q_size, 0.7),
    "background": (q_background, 0.5),
}


def ask(scene: Scene, rng: random.Random, kind: str, grid: int):
    """One question of the given kind, or None where it does not apply to this scene."""
    fn = QUESTIONS[kind][0]
    return fn(scene, rng, grid) if kind == "what_at" else fn(scene, rng)


VQA_EXISTENCE = 0.55
"""Share of short-answer samples that ask whether an object is there, plainly ("Is there a kite in the image?"),
answered "Yes" or "No" (alternately); as VQAv2's most common question type."""
VQA_COLOR_EXISTENCE = 0.15
"""Share that ask the same about a large object of a given colour ("Is there a red kite in the image?"), answered
"Yes" or (alternately) "No" for the object in a colour no object of its kind has."""
VQA_YES_NO_INSTRUCTED = 0.5
"""Share of both kinds of yes/no question that end with the yes/no instruction (" Please answer yes or no.")."""
VQA_CAPTIONS = 0.1
"""Share of short-answer samples that ask for a brief (COCO-style) caption instead."""
VQA_QUESTIONS = {"color": 1.0, "count": 0.6, "where": 0.4, "what_at": 0.4, "background": 0.2}
"""The other short-answer questions and their weights, each with a short-answer instruction."""


class AlternatingAnswers:
    """Yes, no, yes, ... per kind of yes/no question, so that a file's answers are balanced for every kind, as
    POPE's and MME's are: a short stage 2 on a file where one answer is more common learns that answer's prior."""

    def __init__(self):
        self.asked = {}

    def __call__(self, kind: str) -> bool:
        self.asked[kind] = self.asked.get(kind, 0) + 1
        return self.asked[kind] % 2 == 1


def q_color_exists(scene, rng, answer_yes):
    """"Is there a red kite in the image?" about a large object whose kind appears only large in the scene, in its
    colour (when `answer_yes()`) or in a colour no object of its kind has; answered "Yes" / "No". None where the
    scene has no such object: a small object's colour is hard to see (in the world's tower its one patch names the
    kind)."""
    large = [o for o in scene.objects if all(p.size == "large" for p in scene.objects if p.category == o.category)]
    if not large:
        return None
    truth = answer_yes()
    o = rng.choice(large)
    taken = {p.color for p in scene.objects if p.category == o.category}
    color = o.color if truth else rng.choice([c for c in COLORS if c not in taken])
    return f"Is there {L.article(color + ' ' + o.category)} in the image?", _yes_no(truth)


def vqa_sample(sample_id: str, scene: Scene, rng: random.Random, grid: int,
               answers: AlternatingAnswers | None = None) -> dict:
    """One short-answer turn about an image, as in the academic VQA part of LLaVA-1.5's instruction mix: a plain
    yes/no question whether an object (of a colour) is there, answered in one word, half of them with the yes/no
    instruction; another question with a short-answer instruction ("What color is the kite?\nAnswer the question
    using a single word or phrase." -> "red"); or a request for a brief caption. `answers` (shared by the samples
    of one file) alternates yes and no per kind; without it each is drawn at even odds."""
    answers = answers or (lambda kind: rng.random() < 0.5)
    r = rng.random()
    if r < VQA_EXISTENCE + VQA_COLOR_EXISTENCE:
        got = q_color_exists(scene, rng, lambda: answers("color")) if r >= VQA_EXISTENCE else None
        if got is None:  # an existence question, or no large object to ask the colour of
            q, _, short, _ = q_exists(scene, rng, plain=True, present=answers("existence"))
        else:
            q, short = got
        if rng.random() < VQA_YES_NO_INSTRUCTED:
            q += YESNO_SUFFIXES[0]
        return _sample(sample_id, scene, [(q, short)])
    if r < VQA_EXISTENCE + VQA_COLOR_EXISTENCE + VQA_CAPTIONS:
        return _sample(sample_id, scene, [(rng.choice(BRIEF_CAPTION_PROMPTS), L.coco_caption(scene, rng))])
    kinds = list(VQA_QUESTIONS)
    while True:
        got = ask(scene, rng, rng.choices(kinds, weights=list(VQA_QUESTIONS.values()))[0], grid)
        if got is not None:
            break
    q, _, short, _ = got
    return _sample(sample_id, scene, [(q + rng.choice(SHORT_SUFFIXES), short)])


def pretrain_sample(sample_id: str, scene: Scene, rng: random.Random) -> dict:
    caption = L.coco_caption(scene, rng) if rng.random() < 0.5 else L.flickr_caption(scene, rng)
    prompt = rng.choice(PRETRAIN_PROMPTS)
    human = f"<image>\n{prompt}" if rng.random() < 0.5 else f"{prompt}\n<image>"
    return {"id": sample_id, "image": scene.file,
            "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": caption}]}


CONVERSATION_KINDS = {"existence": 0.4, "colour": 0.2, "position": 0.2, "count": 0.2}
"""What a conversation turn asks and how often, as in LLaVA-Instruct's conversations: whether an object is there
(POPE's kind of question; answered "Yes, ..." or "No, there is no ... in the image.", alternating per file), an
object's colour, where it is, and how many there are. Answers are short full sentences."""


def conversation_turn(scene: Scene, rng: random.Random, grid: int, kind: str,
                      answers: AlternatingAnswers | None = None):
    """(question, answer) of one grounded conversation turn of `kind`, or None where it does not apply."""
    answers = answers or (lambda k: rng.random() < 0.5)
    if kind == "existence":
        q, full, _, _ = q_exists(scene, rng, present=answers("existence"))
        return q, full
    if kind == "colour":
        got = q_color(scene, rng)
    elif kind == "position":
        got = q_where(scene, rng) if rng.random() < 0.7 else q_what_at(scene, rng, grid)
    else:
        got = q_count(scene, rng)
    return None if got is None else (got[0], got[1])


def conversation_sample(sample_id: str, scene: Scene, rng: random.Random, grid: int,
                        answers: AlternatingAnswers | None = None) -> dict:
    """2-4 turns of short grounded questions about the image (CONVERSATION_KINDS), each answered in one sentence;
    `answers` (shared by the samples of one file) alternates the existence questions' yes and no."""
    n_turns = rng.choice([2, 3, 3, 4])
    kinds = list(CONVERSATION_KINDS)
    pairs, asked = [], set()
    for _ in range(4 * n_turns):
        kind = rng.choices(kinds, weights=list(CONVERSATION_KINDS.values()))[0]
        got = conversation_turn(scene, rng, grid, kind, answers)
        if got is not None and got[0] not in asked:
            asked.add(got[0])
            pairs.append(got)
        if len(pairs) == n_turns:
            break
    return _sample(sample_id, scene, pairs)


def detail_sample(sample_id: str, scene: Scene, rng: random.Random) -> dict:
    return _sample(sample_id, scene, [(rng.choice(DETAIL_PROMPTS), L.detailed_description(scene, rng))])


def _list_with_positions(objs):
    return L.join_list([f"the {o.category} {L.position_phrase(o.position)}" for o in objs])


def r_bigger(scene, rng):
    objs = L.distinct_by(scene)
    if len(objs) < 2:
        return None
    a, b = rng.sample(objs, 2)
    if a.size == b.size:
        why = f"the {a.category} and the {b.category} are both {a.size}, so they are about the same size."
    else:
        big, small = (a, b) if a.size == "large" else (b, a)
        why = (f"the {big.category} is drawn large {L.position_phrase(big.position)}, while the {small.category} "
               f"{L.position_phrase(small.position)} is small.")
    if rng.random() < 0.5:
        q = f"Which is bigger, the {a.category} or the {b.category}?"
        lead = "Neither: " if a.size == b.size else f"The {a.category if a.size == 'large' else b.category}: "
    else:
        q = f"Is the {a.category} bigger than the {b.category}?"
        lead = "Yes, " if (a.size, b.size) == ("large", "small") else "No, "
    return q, lead + why


def r_count_color(scene, rng):
    color = rng.choice([o.color for o in scene.objects] + [rng.choice(list(COLORS))])
    objs = [o for o in scene.objects if o.color == color]
    q = rng.choice([f"How many {color} objects are there in the image?", f"Count the {color} things in the picture."])
    if not objs:
        others = L.join_list(sorted({o.color for o in scene.objects}, key=list(COLORS).index))
        return q, f"There are no {color} objects. The objects in the image are {others}."
    if len(objs) == 1:
        return q, f"There is one {color} object: the {objs[0].category} {L.position_phrase(objs[0].position)}."
    return q, f"There are {L.number_word(len(objs))} {color} objects: {_list_with_positions(objs)}."


def r_same_color(scene, rng):
    objs = L.distinct_by(scene)
    if len(objs) < 2:
        return None
    a, b = rng.sample(objs, 2)
    q = rng.choice([f"Do the {a.category} and the {b.category} have the same color?",
                    f"Are the {a.category} and the {b.category} the same color?"])
    if a.color == b.color:
        return q, f"Yes. Both the {a.category} and the {b.category} are {a.color}."
    return q, f"No. The {a.category} is {a.color}, while the {b.category} is {b.color}."


def r_remove(scene, rng):
    if len(scene.categories()) < 2:
        return None
    cat = rng.choice(scene.categories())
    n, k = len(scene.objects), scene.count(cat)
    q = rng.choice([f"If the {L.plural(cat, k)} were taken away, how many objects would be left?",
                    f"How many objects would remain after removing every {cat}?"])
    left = n - k
    return q, (f"{L.capitalize(L.number_word(left))}. The image has {L.number_word(n)} "
               f"object{'s' if n > 1 else ''}, and {L.number_word(k)} of them {'is a' if k == 1 else 'are'} "
               f"{L.plural(cat, k)}, so {L.number_word(left)} would remain.")


def r_place(scene, rng):
    clues = [o for o in scene.objects if o.category in THEMES[scene.theme][1]]
    if not clues:
        return None
    q = rng.choice(["Where might this scene take place?", "What kind of place does this picture suggest?"])
    kinds = L.join_list([L.article(c) if scene.count(c) == 1 else L.plural(c)
                         for c in dict.fromkeys(o.category for o in clues)])
    reason = f"because it shows {kinds}"
    if scene.background == THEMES[scene.theme][2] and scene.background != "plain":
        reason += f" {L.BACKGROUND_PHRASES[scene.background][0]}"
    return q, f"It could be {PLACES[scene.theme]}, {reason}. These objects often appear together there."


def r_odd_color(scene, rng):
    if len(scene.objects) < 3:
        return None
    colors = Counter(o.color for o in scene.objects)
    if len(colors) != 2 or 1 not in colors.values():
        return None
    odd = next(o for o in scene.objects if colors[o.color] == 1)
    common = next(c for c in colors if c != odd.color)
    q = rng.choice(["Which object has a different color from the others?", "Which object does not share the color of the rest?"])
    return q, f"The {odd.category} {L.position_phrase(odd.position)}: it is {odd.color}, while all the other objects are {common}."


def r_kinds(scene, rng):
    cats = scene.categories()
    q = rng.choice(["How many different kinds of objects are in the image, and what are they?",
                    "List the kinds of objects you see and say how many of each there are."])
    parts = [f"{L.number_word(scene.count(c))} {L.plural(c, scene.count(c))}" for c in cats]
    return q, (f"There {'is' if len(cats) == 1 else 'are'} {L.number_word(len(cats))} "
               f"kind{'s' if len(cats) > 1 else ''} of object: {L.join_list(parts)}.")


REASONING = {"bigger": r_bigger, "count_color": r_count_color, "same_color": r_same_color, "remove": r_remove,
             "place": r_place, "odd_color": r_odd_color, "kinds": r_kinds}


def complex_sample(sample_id: str, scene: Scene, rng: random.Random) -> dict:
    n_turns = 1 if rng.random() < 0.6 else 2
    kinds = list(REASONING)
    rng.shuffle(kinds)
    pairs = []
    for kind in kinds:
        got = REASONING[kind](scene, rng)
        if got is not None:
            pairs.append(got)
        if len(pairs) == n_turns:
            break
    return _sample(sample_id, scene, pairs)
