"""Benchmark tasks: loading the official layouts, exact prompts per protocol, seeded demonstrations,
the paper's VQAv2 subset, --limit, and errors for missing files. No model is needed here."""

import json
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_eval_helpers import write_tiny_benchmarks  # noqa: E402

from lntune.errors import LntuneError  # noqa: E402
from lntune.eval.generate import render_prompt  # noqa: E402
from lntune.eval.tasks import get_task, parse_task_list  # noqa: E402
from lntune.eval.tasks.base import PAPER_DECODING  # noqa: E402

INSTRUCTION = "Please provide a description of the picture."


@pytest.fixture()
def bench(tmp_path):
    return write_tiny_benchmarks(tmp_path)


def test_pope_samples_prompts_and_real_image_layout(bench):
    data, images = bench
    samples = get_task("pope", data).samples()
    assert [s.id for s in samples[:5]] == ["random/1", "random/2", "random/3", "random/4", "popular/1"]
    assert len(samples) == 12
    assert samples[0].messages == [{"role": "user", "content": "<image>\nIs there a snowboard in the image?"}]
    assert samples[0].image == images / "val2014" / "COCO_val2014_000000310196.jpg"
    assert samples[4].meta == {"question_id": 1, "category": "popular", "label": "yes"}
    # The paper protocol asks the same zero-shot question.
    assert get_task("pope", data, protocol="paper").samples()[0].messages == samples[0].messages


def test_mme_both_layouts_prompt_and_paper_exclusions(bench):
    data, _ = bench
    samples = get_task("mme", data).samples()
    assert [s.meta["subtask"] for s in samples] == ["existence"] * 4 + ["posters"] * 2 + ["code_reasoning"] * 2
    first = samples[0]
    assert first.id == "existence/000000006040.jpg/1"
    assert first.messages == [{"role": "user",
                               "content": "<image>\nIs there a train in this image? Please answer yes or no."}]
    assert first.meta["gt"] == "Yes" and first.image.name == "000000006040.jpg"
    posters = samples[4]
    assert posters.image == data / "mme" / "posters" / "images" / "tt0048028.jpg"
    assert posters.meta["question"] == "Is this movie directed by elia kazan? Please answer yes or no."
    assert samples[6].image.name == "0001.png"

    # A landmark folder is run by the official protocol and skipped by the paper's.
    landmark = data / "mme" / "landmark"
    landmark.mkdir()
    (landmark / "a.txt").write_text("Is this the Eiffel Tower? Please answer yes or no.\tYes\n"
                                    "Is this Big Ben? Please answer yes or no.\tNo\n")
    from PIL import Image

    Image.new("RGB", (8, 8)).save(landmark / "a.jpg")
    assert get_task("mme", data).subtasks() == ["existence", "posters", "landmark", "code_reasoning"]
    assert get_task("mme", data, protocol="paper").subtasks() == ["existence", "posters", "code_reasoning"]


def test_mme_limit_keeps_whole_images(bench):
    data, _ = bench
    samples = get_task("mme", data).samples(limit=3)
    assert [s.id for s in samples] == ["existence/000000006040.jpg/1", "existence/000000006040.jpg/2",
                                       "posters/tt0048028.jpg/1", "posters/tt0048028.jpg/2",
                                       "code_reasoning/0001.png/1", "code_reasoning/0001.png/2"]


def test_vqav2_official_prompt(bench):
    data, images = bench
    samples = get_task("vqav2", data).samples()
    assert [s.id for s in samples] == ["10", "11", "12", "20", "21", "22", "30", "31", "32"]
    assert samples[0].messages == [{"role": "user", "content": "<image>\nWhat color is the ball?\n"
                                                               "Answer the question using a single word or phrase."}]
    assert samples[3].image == images / "val2014" / "COCO_val2014_000000000002.jpg"
    assert [s.id for s in get_task("vqav2", data).samples(limit=2)] == ["10", "11"]


def test_vqav2_paper_subset_and_demos_follow_the_authors_seeding(bench):
    data, _ = bench
    samples = get_task("vqav2", data, protocol="paper").samples()
    # np.random.seed(42); np.random.choice(9, 9, replace=False) = [7 1 5 0 8 2 4 3 6]: a pool of
    # 9 // 2 = 4 questions (rows 7, 1, 5, 0), then the evaluated rows 8, 2, 4, 3, 6.
    assert [s.id for s in samples] == ["32", "12", "21", "20", "30"]
    pool = [("How many dogs are there?", "2"), ("How many dogs are there?", "2"), ("Is it sunny?", "yes"),
            ("What color is the ball?", "red")]
    rng = random.Random(42)
    for sample in samples:
        demos = rng.sample(pool, 3)
        expected = [m for q, a in demos for m in ({"role": "user", "content": q}, {"role": "assistant", "content": a})]
        assert sample.messages[:-1] == expected
    assert samples[0].messages[-1] == {"role": "user", "content": "<image>\nIs it sunny?"}
    task = get_task("vqav2", data, protocol="paper")
    assert task.parse("two dogs, one cat Question: why") == "two dogs"
    assert task.parse("red\nShort answer: red") == "red"
    # The official protocol writes officially normalised answers ("Yes" would miss an all-"yes" question).
    official = get_task("vqav2", data)
    assert [official.parse(t) for t in ("Two dogs, one cat.", "Yes", " The red ball\n")] == [
        "2 dogs 1 cat", "yes", "red ball"]
    assert task.decoding() == PAPER_DECODING
    assert (PAPER_DECODING.max_new_tokens, PAPER_DECODING.do_sample, PAPER_DECODING.temperature,
            PAPER_DECODING.top_k) == (10, True, 0.2, 50)


def test_caption_demos_are_seeded_training_captions(bench):
    data, images = bench
    karpathy = json.loads((data / "coco" / "dataset_coco.json").read_text())
    train = [i for i in karpathy["images"] if i["split"] == "train"]
    train_captions = {s["raw"].strip() for i in train for s in i["sentences"]}
    test_captions = {s["raw"].strip() for i in karpathy["images"] if i["split"] == "test" for s in i["sentences"]}

    samples = get_task("coco", data).samples()
    assert [s.meta["image_id"] for s in samples] == [40468, 10822, 497466]
    assert samples[0].image == images / "val2014" / "COCO_val2014_000000040468.jpg"
    rng = random.Random(42)
    for sample in samples:
        expected = [rng.choice(d["sentences"])["raw"].strip() for d in rng.sample(train, 3)]
        assert sample.meta["demos"] == expected
        assert set(expected) <= train_captions and not set(expected) & test_captions
        assert sample.messages == [
            {"role": "user", "content": INSTRUCTION}, {"role": "assistant", "content": expected[0]},
            {"role": "user", "content": INSTRUCTION}, {"role": "assistant", "content": expected[1]},
            {"role": "user", "content": INSTRUCTION}, {"role": "assistant", "content": expected[2]},
            {"role": "user", "content": "<image>\n" + INSTRUCTION},
        ]
    assert [s.meta["demos"] for s in get_task("coco", data).samples()] == [s.meta["demos"] for s in samples]
    assert [s.meta["demos"] for s in get_task("coco", data, seed=7).samples()] != [s.meta["demos"] for s in samples]


def test_flickr_ids_are_file_names_and_paper_parse_drops_quotes(bench):
    data, images = bench
    samples = get_task("flickr30k", data).samples()
    assert [s.meta["image_id"] for s in samples] == ["100000.jpg", "100001.jpg"]
    assert samples[0].image == images / "flickr30k-images" / "100000.jpg"
    assert all(d.startswith("A dog runs on the grass number ") and d[31] in "234" for d in samples[0].meta["demos"])
    assert get_task("flickr30k", data, protocol="paper").parse(' A "big"\n dog ') == "A big dog"
    assert get_task("flickr30k", data).parse(' A "big"\n dog ') == 'A "big" dog'


def test_prompt_is_rendered_with_the_chat_template():
    from test_eval_helpers import tiny_tokenizer

    class Processor:  # the parts of a LlavaProcessor render_prompt uses
        tokenizer = tiny_tokenizer()
        image_token = "<image>"

    messages = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"},
                {"role": "user", "content": "<image>\nIs it red?"}]
    assert render_prompt(Processor, messages) == (
        "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n"
        "<|im_start|>user\n<image>\nIs it red?<|im_end|>\n<|im_start|>assistant\n")
    Processor.tokenizer.chat_template = None
    with pytest.raises(LntuneError, match="no chat template"):
        render_prompt(Processor, messages)


@pytest.mark.parametrize("task, relative", [
    ("pope", "pope/coco_pope_popular.json"),
    ("vqav2", "vqav2/annotations.json"),
    ("coco", "coco/dataset_coco.json"),
    ("flickr30k", "flickr30k/dataset_flickr30k.json"),
    ("mme", "mme"),
])
def test_missing_data_file_names_path_and_layout(bench, task, relative):
    import shutil

    data, _ = bench
    path = data / relative
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    with pytest.raises(LntuneError) as err:
        get_task(task, data).samples()
    message = str(err.value)
    assert str(path) in message and "expected layout" in message and "\n" not in message


def test_missing_image_and_bad_lines_are_named(bench):
    data, images = bench
    (images / "val2014" / "COCO_val2014_000000310196.jpg").unlink()
    with pytest.raises(LntuneError, match=r"pope: image for sample random/1 not found: looked for "
                                          r"'COCO_val2014_000000310196.jpg'"):
        get_task("pope", data).samples()
    bad = data / "mme" / "existence" / "000000006040.txt"
    bad.write_text("Is there a train? Please answer yes or no.\tMaybe\n")
    with pytest.raises(LntuneError, match=rf"{bad}:1: expected 'question<TAB>Yes\|No'"):
        get_task("mme", data).samples()
    (data / "vqav2" / "questions.json").write_text('{"questions": [\n{"question_id": 1,}]}')
    with pytest.raises(LntuneError, match=r"questions.json:2:\d+: not valid JSON"):
        get_task("vqav2", data).samples()


def test_task_list_and_protocol_checks(bench):
    data, _ = bench
    assert parse_task_list("pope, mme,pope") == ["pope", "mme"]
    with pytest.raises(LntuneError, match="unknown task\\(s\\) gqa; choose from: mme, vqav2, coco, flickr30k, pope"):
        parse_task_list("pope,gqa")
    with pytest.raises(LntuneError, match="unknown protocol 'lmms'"):
        get_task("pope", data, protocol="lmms")
