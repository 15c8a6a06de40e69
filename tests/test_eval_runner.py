"""The evaluation runner: official-format outputs, exact scores of known answers, resume after a kill,
refusal to mix settings, length-sorted batches, fail-fast on missing files, and `lntune eval`."""

import json
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_eval_helpers import tiny_llava, write_tiny_benchmarks  # noqa: E402

from lntune.errors import LntuneError  # noqa: E402
from lntune.eval import generate as gen  # noqa: E402
from lntune.eval.runner import evaluate  # noqa: E402
from lntune.eval.tasks.mme import Mme  # noqa: E402
from lntune.eval.tasks.pope import Pope  # noqa: E402

ALL = ["mme", "vqav2", "coco", "flickr30k", "pope"]


@pytest.fixture(scope="module")
def tiny():
    return tiny_llava(seed=0)


@pytest.fixture()
def bench(tmp_path):
    return write_tiny_benchmarks(tmp_path)


class FakeGenerator:
    """Stands in for generate_batch: records the prompts of each call, answers `answer`, can die."""

    def __init__(self, answer="Yes", die_on_call=None):
        self.answer, self.die_on_call, self.calls, self.settled = answer, die_on_call, [], set()

    def __call__(self, model, processor, prompts, images, max_new_tokens, settled=None, **kwargs):
        if self.die_on_call is not None and len(self.calls) + 1 == self.die_on_call:
            raise KeyboardInterrupt
        assert len(prompts) == len(images)
        self.calls.append(list(prompts))
        self.settled.add(settled is not None)
        return [self.answer for _ in prompts]

    @property
    def prompts(self):
        return [p for call in self.calls for p in call]


def _lines(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_real_generation_writes_every_official_format(tiny, bench, tmp_path):
    model, processor = tiny
    data, _ = bench
    out = tmp_path / "out"
    metrics = evaluate(model, processor, ALL, data, out, batch_size=4, max_new_tokens=3, progress=False)
    assert list(metrics) == ALL
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert set(metrics["pope"]["ci95"]) == {"random", "popular", "adversarial", "mean_f1", "mean_accuracy"}
    assert set(metrics["coco"]["ci95"]) == {"CIDEr", "BLEU-4", "ROUGE-L"}
    units = {task: json.loads((out / "units" / f"{task}.json").read_text()) for task in ALL}
    assert {task: (u["benchmark"], len(u["records"])) for task, u in units.items()} == {
        "mme": ("mme", 4), "vqav2": ("vqav2", 9), "coco": ("caption", 3), "flickr30k": ("caption", 2),
        "pope": ("pope", 12)}

    for task, n in {"mme": 8, "vqav2": 9, "coco": 3, "flickr30k": 2, "pope": 12}.items():
        records = _lines(out / "predictions" / f"{task}.jsonl")
        assert len(records) == n and len({r["id"] for r in records}) == n
        assert all(set(r) == {"id", "image", "prompt", "text"} for r in records)
        assert all(r["prompt"].startswith("<|im_start|>user\n") and r["prompt"].endswith("<|im_start|>assistant\n")
                   for r in records)

    pope = _lines(out / "pope" / "answers.jsonl")
    assert [(r["category"], r["question_id"]) for r in pope] == [
        (split, qid) for split in ("random", "popular", "adversarial") for qid in (1, 2, 3, 4)]
    assert all(set(r) == {"question_id", "category", "text", "prompt"} for r in pope)
    assert pope[0]["prompt"] == ("<|im_start|>user\n<image>\nIs there a snowboard in the image?<|im_end|>\n"
                                 "<|im_start|>assistant\n")

    existence = (out / "mme" / "existence.txt").read_text().splitlines()
    assert [line.split("\t")[:3] for line in existence] == [
        ["000000006040.jpg", "Is there a train in this image? Please answer yes or no.", "Yes"],
        ["000000006040.jpg", "Is there a bed in this image? Please answer yes or no.", "No"],
        ["000000006471.jpg", "Is there a baseball bat in this image? Please answer yes or no.", "Yes"],
        ["000000006471.jpg", "Is there a giraffe in this image? Please answer yes or no.", "No"]]
    assert all(len(line.split("\t")) == 4 for line in existence)
    assert sorted(p.name for p in (out / "mme").iterdir()) == ["code_reasoning.txt", "existence.txt", "posters.txt"]

    vqa = json.loads((out / "vqav2" / "results.json").read_text())
    assert [r["question_id"] for r in vqa] == [10, 11, 12, 20, 21, 22, 30, 31, 32]
    assert all(set(r) == {"question_id", "answer"} for r in vqa)
    assert [r["image_id"] for r in json.loads((out / "coco" / "results.json").read_text())] == [40468, 10822, 497466]
    assert [r["image_id"] for r in json.loads((out / "flickr30k" / "results.json").read_text())] == [
        "100000.jpg", "100001.jpg"]
    assert (out / "results.md").read_text().splitlines()[2] == (
        "| Model | MME (P/C) | VQAv2 | MSCOCO | Flickr30k | POPE acc (pop/rand/adv) |")


def test_known_answers_give_exact_scores(tiny, bench, tmp_path, monkeypatch):
    model, processor = tiny
    data, _ = bench
    monkeypatch.setattr(gen, "generate_batch", FakeGenerator("Yes"))
    metrics = evaluate(model, processor, ["mme", "pope"], data, tmp_path / "yes", progress=False)
    # Every subtask: half the answers right, no image with both right -> 50 + 0; so in every resample too.
    assert metrics["mme"].pop("ci95") == {"perception": [100.0, 100.0], "cognition": [50.0, 50.0],
                                          "subtasks": {name: [50.0, 50.0] for name in metrics["mme"]["subtasks"]}}
    assert metrics["mme"] == {"perception": 100.0, "cognition": 50.0,
                              "subtasks": {"existence": 50.0, "posters": 50.0, "code_reasoning": 50.0}}
    for split in ("random", "popular", "adversarial"):
        assert metrics["pope"][split]["accuracy"] == 50.0 and metrics["pope"][split]["yes_ratio"] == 100.0
    monkeypatch.setattr(gen, "generate_batch", FakeGenerator("red"))
    vqa = evaluate(model, processor, ["vqav2"], data, tmp_path / "red", progress=False)["vqav2"]
    assert vqa["accuracy"] == 33.33  # the three ball questions (7 of 10 humans said red) are right
    low, high = vqa["ci95"]["accuracy"]
    assert 0 <= low < 33.33 < high <= 100
    assert (tmp_path / "yes" / "results.md").read_text().splitlines()[4] == (
        "| model | 100.0 [100.0, 100.0]/50.0 [50.0, 50.0] | - | - | - | "
        "50.0 [0.0, 100.0]/50.0 [0.0, 100.0]/50.0 [0.0, 100.0] |")


def test_paper_protocol_samples_with_the_authors_settings(tiny, bench, tmp_path):
    model, processor = tiny
    data, _ = bench
    (data / "mme" / "landmark").mkdir()  # present but left out by the paper protocol
    out = tmp_path / "paper"
    metrics = evaluate(model, processor, ["vqav2", "mme"], data, out, protocol="paper", progress=False)
    config = json.loads((out / "eval_config.json").read_text())
    assert config["protocol"] == "paper" and config["seed"] == 42
    assert config["decoding"]["vqav2"] == {"max_new_tokens": 10, "do_sample": True, "temperature": 0.2, "top_k": 50}
    assert metrics["vqav2"]["questions"] == 5  # the seeded subset, scored alone
    assert [r["question_id"] for r in json.loads((out / "vqav2" / "results.json").read_text())] == [32, 12, 21, 20, 30]
    assert set(metrics["mme"]["subtasks"]) == {"existence", "posters", "code_reasoning"}


def test_resume_after_a_kill_generates_only_the_rest(tiny, bench, tmp_path, monkeypatch):
    model, processor = tiny
    data, _ = bench
    out = tmp_path / "out"
    dying = FakeGenerator("No", die_on_call=2)
    monkeypatch.setattr(gen, "generate_batch", dying)
    with pytest.raises(KeyboardInterrupt):
        evaluate(model, processor, ["pope"], data, out, batch_size=2, progress=False)
    done = _lines(out / "predictions" / "pope.jsonl")
    # The first batch asked two distinct prompts; every question asking one of them has its record.
    assert {r["prompt"] for r in done} == set(dying.prompts) and len(dying.prompts) == 2
    assert len(done) == sum(prompt in dying.prompts for prompt in _pope_prompts(data, processor))
    assert not (out / "pope" / "answers.jsonl").exists()

    rest = FakeGenerator("No")
    monkeypatch.setattr(gen, "generate_batch", rest)
    metrics = evaluate(model, processor, ["pope"], data, out, batch_size=2, progress=False)
    final = _lines(out / "predictions" / "pope.jsonl")
    assert Counter(rest.prompts) == Counter(set(r["prompt"] for r in final) - set(r["prompt"] for r in done))
    assert final[:len(done)] == done and len({r["id"] for r in final}) == len(final) == 12
    assert metrics["pope"]["random"]["accuracy"] == 50.0 and metrics["pope"]["random"]["yes_ratio"] == 0.0

    again = FakeGenerator("No")
    monkeypatch.setattr(gen, "generate_batch", again)
    evaluate(model, processor, ["pope"], data, out, progress=False)
    assert again.calls == []


def _pope_prompts(data, processor):
    return [gen.render_prompt(processor, s.messages) for s in Pope(data).samples()]


def test_greedy_asks_each_image_and_prompt_once_and_sampling_asks_every_question(tiny, bench, tmp_path, monkeypatch):
    model, processor = tiny
    data, _ = bench
    prompts = _pope_prompts(data, processor)
    assert len(prompts) == 12 and len(set(prompts)) == 6  # POPE's splits repeat questions (one image here)
    greedy = FakeGenerator("No")
    monkeypatch.setattr(gen, "generate_batch", greedy)
    evaluate(model, processor, ["pope"], data, tmp_path / "greedy", batch_size=4, progress=False)
    assert sorted(greedy.prompts) == sorted(set(prompts))
    records = _lines(tmp_path / "greedy" / "predictions" / "pope.jsonl")
    assert Counter(r["prompt"] for r in records) == Counter(prompts)

    assert greedy.settled == {True}
    assert json.loads((tmp_path / "greedy" / "timing.json").read_text())["pope"]["unique_requests"] == 6

    sampling = FakeGenerator("No")
    monkeypatch.setattr(gen, "generate_batch", sampling)
    evaluate(model, processor, ["pope"], data, tmp_path / "sampled", batch_size=4, do_sample=True, progress=False)
    assert Counter(sampling.prompts) == Counter(prompts)
    # Sampling: every question is its own draw, and no answer ends early.
    assert sampling.settled == {False}
    assert json.loads((tmp_path / "sampled" / "timing.json").read_text())["pope"]["unique_requests"] == 12
    assert "stop_when_settled" not in json.loads((tmp_path / "sampled" / "eval_config.json").read_text())["decoding"]["pope"]


def test_a_resumed_greedy_run_reuses_answers_to_the_same_question(tiny, bench, tmp_path, monkeypatch):
    model, processor = tiny
    data, _ = bench
    out = tmp_path / "out"
    monkeypatch.setattr(gen, "generate_batch", FakeGenerator("No"))
    evaluate(model, processor, ["pope"], data, out, progress=False)
    path = out / "predictions" / "pope.jsonl"
    records = _lines(path)
    # Keep one record of the snowboard question (asked in all three splits) and drop the rest of it and the car.
    kept = [r for r in records
            if "car" not in r["prompt"] and not ("snowboard" in r["prompt"] and r["id"] != "random/1")]
    path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    again = FakeGenerator("Yes")
    monkeypatch.setattr(gen, "generate_batch", again)
    evaluate(model, processor, ["pope"], data, out, progress=False)
    assert [p.split("\n")[2] for p in again.prompts] == ["Is there a car in the image?<|im_end|>"]
    final = {r["id"]: r["text"] for r in _lines(path)}
    assert {final[i] for i in ("popular/1", "adversarial/1")} == {"No"}  # the snowboard: reused, not asked
    assert len(final) == 12 and sum(text == "Yes" for text in final.values()) == 3


def test_partial_jsonl_with_a_torn_last_line(tiny, bench, tmp_path, monkeypatch):
    model, processor = tiny
    data, _ = bench
    first = tmp_path / "first"
    monkeypatch.setattr(gen, "generate_batch", FakeGenerator("No"))
    evaluate(model, processor, ["vqav2"], data, first, progress=False)
    records = (first / "predictions" / "vqav2.jsonl").read_text().splitlines()

    out = tmp_path / "out"
    (out / "predictions").mkdir(parents=True)
    torn = records[5][: len(records[5]) // 2]
    (out / "predictions" / "vqav2.jsonl").write_text("\n".join(records[:5]) + "\n" + torn)
    rest = FakeGenerator("No")
    monkeypatch.setattr(gen, "generate_batch", rest)
    evaluate(model, processor, ["vqav2"], data, out, progress=False)
    kept = [json.loads(r) for r in records[:5]]
    assert len(rest.prompts) == 4
    final = _lines(out / "predictions" / "vqav2.jsonl")
    assert final[:5] == kept and len({r["id"] for r in final}) == 9
    assert Counter(rest.prompts) == Counter(r["prompt"] for r in final[5:])
    assert Counter(rest.prompts) == Counter(json.loads(r)["prompt"] for r in records) - Counter(
        r["prompt"] for r in kept)


def test_batches_are_sorted_longest_prompt_first(tiny, bench, tmp_path, monkeypatch):
    model, processor = tiny
    data, _ = bench
    fake = FakeGenerator("a dog")
    monkeypatch.setattr(gen, "generate_batch", fake)
    evaluate(model, processor, ["coco", "flickr30k"], data, tmp_path / "out", batch_size=2, progress=False)
    lengths = [len(processor.tokenizer(p)["input_ids"]) for p in fake.prompts[:3]]
    assert lengths == sorted(lengths, reverse=True) and len(set(lengths)) > 1
    assert [len(call) for call in fake.calls] == [2, 1, 2]


def test_settings_cannot_change_under_a_run(tiny, bench, tmp_path, monkeypatch):
    model, processor = tiny
    data, _ = bench
    out = tmp_path / "out"
    monkeypatch.setattr(gen, "generate_batch", FakeGenerator("No"))
    evaluate(model, processor, ["pope"], data, out, progress=False)
    with pytest.raises(LntuneError, match=r"eval_config.json: this folder holds a run with protocol='official'"):
        evaluate(model, processor, ["pope"], data, out, protocol="paper", progress=False)
    with pytest.raises(LntuneError, match=r"task pope was decoded with"):
        evaluate(model, processor, ["pope"], data, out, max_new_tokens=99, progress=False)
    assert json.loads((out / "eval_config.json").read_text())["dtype"] == "float32"
    model.to(torch.bfloat16)
    try:
        with pytest.raises(LntuneError, match=r"holds a run with dtype='float32', not 'bfloat16'"):
            evaluate(model, processor, ["pope"], data, out, progress=False)
    finally:
        model.to(torch.float32)
    path = out / "predictions" / "pope.jsonl"
    lines = path.read_text().splitlines()
    record = json.loads(lines[2])
    record["prompt"] = record["prompt"].replace("Is there", "Are there")
    path.write_text("\n".join(lines[:2] + [json.dumps(record)] + lines[3:]) + "\n")
    with pytest.raises(LntuneError, match=rf"{path}:3: sample {record['id']} was asked with another prompt"):
        evaluate(model, processor, ["pope"], data, out, progress=False)


def test_missing_files_fail_before_any_generation(tiny, bench, tmp_path, monkeypatch):
    model, processor = tiny
    data, _ = bench
    (data / "flickr30k" / "dataset_flickr30k.json").unlink()
    fake = FakeGenerator("No")
    monkeypatch.setattr(gen, "generate_batch", fake)
    with pytest.raises(LntuneError, match=r"flickr30k: Karpathy split file not found: .*dataset_flickr30k.json "
                                          r"\(expected layout under the data root: flickr30k/dataset_flickr30k.json"):
        evaluate(model, processor, ["pope", "flickr30k"], data, tmp_path / "out", progress=False)
    assert fake.calls == [] and not (tmp_path / "out" / "predictions").exists()
    with pytest.raises(LntuneError, match="data root .*nowhere is not a folder"):
        evaluate(model, processor, ["pope"], tmp_path / "nowhere", tmp_path / "out", progress=False)


def test_eval_command_end_to_end(tiny, bench, tmp_path, capsys):
    from lntune.cli import main

    model, processor = tiny
    data, images = bench
    model_dir = tmp_path / "tiny-llava"
    model.save_pretrained(model_dir)
    processor.save_pretrained(model_dir)
    out = tmp_path / "out"
    argv = ["eval", "--model", str(model_dir), "--tasks", "pope,mme", "--data-root", str(data), "--image-root",
            str(images), "--limit", "2", "--max-new-tokens", "2", "--batch-size", "3", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| tiny-llava |" in printed and f"wrote {out / 'metrics.json'}" in printed
    assert len(_lines(out / "predictions" / "pope.jsonl")) == 6
    assert len(_lines(out / "pope" / "labels" / "coco_pope_random.json")) == 2
    assert len(_lines(out / "predictions" / "mme.jsonl")) == 6
    assert main(argv) == 0  # resumed: nothing left to generate, same outputs
    capsys.readouterr()
    assert main(["eval", "--model", str(model_dir), "--tasks", "pope", "--data-root", str(tmp_path / "nope"),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lntune: error: --data-root") and "nope" in err


def test_deduplicated_batches_answer_as_one_question_at_a_time(tiny, bench, tmp_path):
    from lntune.eval.runner import open_image

    model, processor = tiny
    data, _ = bench
    out = tmp_path / "out"
    evaluate(model, processor, ["pope", "mme"], data, out, batch_size=3, max_new_tokens=4, progress=False)
    for task in (Pope(data), Mme(data)):
        for r in _lines(out / "predictions" / f"{task.name}.jsonl"):
            alone = gen.generate_batch(model, processor, [r["prompt"]], [open_image(r["image"], r["id"], task.name)],
                                       max_new_tokens=4, settled=task.settled)
            assert alone == [r["text"]], r["id"]


def test_deduplicated_run_writes_the_answers_of_an_undeduplicated_one(tiny, bench, tmp_path, monkeypatch):
    from lntune.eval import runner

    model, processor = tiny
    data, _ = bench
    evaluate(model, processor, ["pope"], data, tmp_path / "once", batch_size=4, max_new_tokens=6, progress=False)
    monkeypatch.setattr(runner, "group_requests", lambda samples, prompts, greedy: [[s] for s in samples])
    evaluate(model, processor, ["pope"], data, tmp_path / "every", batch_size=4, max_new_tokens=6, progress=False)
    for name in ("pope/answers.jsonl", "metrics.json"):
        assert (tmp_path / "once" / name).read_text() == (tmp_path / "every" / name).read_text()
    timings = [json.loads((tmp_path / run / "timing.json").read_text())["pope"] for run in ("once", "every")]
    assert [(t["generated"], t["unique_requests"]) for t in timings] == [(12, 6), (12, 12)]


def test_shared_prefix_run_writes_the_answers_of_whole_prompts(tiny, bench, tmp_path, monkeypatch):
    from lntune.eval import shared_prefix

    model, processor = tiny
    data, _ = bench
    planned = []
    real_plan = shared_prefix.plan_shared_prefix
    monkeypatch.setattr(shared_prefix, "plan_shared_prefix", lambda *a, **k: planned.append(real_plan(*a, **k))
                        or planned[-1])
    evaluate(model, processor, ["pope", "mme"], data, tmp_path / "shared", batch_size=4, max_new_tokens=6,
             progress=False)
    assert any(plan is not None for plan in planned)  # some batches did share an image's prefix
    evaluate(model, processor, ["pope", "mme"], data, tmp_path / "whole", batch_size=4, max_new_tokens=6,
             progress=False, shared_prefix=False)
    for name in ("pope/answers.jsonl", "metrics.json", "predictions/mme.jsonl", "predictions/pope.jsonl"):
        assert (tmp_path / "shared" / name).read_text() == (tmp_path / "whole" / name).read_text()


def test_answers_ended_when_settled_score_as_whole_answers(tiny, bench, tmp_path, monkeypatch):
    model, processor = tiny
    data, _ = bench
    evaluate(model, processor, ["pope", "mme"], data, tmp_path / "early", batch_size=4, max_new_tokens=12,
             progress=False)
    for task in (Pope, Mme):
        monkeypatch.setattr(task, "stops_when_settled", False)
    evaluate(model, processor, ["pope", "mme"], data, tmp_path / "whole", batch_size=4, max_new_tokens=12,
             progress=False)
    early, whole = ({r["id"]: r["text"] for task in ("pope", "mme") for r in _lines(tmp_path / run / "predictions" /
                                                                                    f"{task}.jsonl")}
                    for run in ("early", "whole"))
    assert early.keys() == whole.keys()
    assert all(whole[i].startswith(early[i]) for i in early)
    assert sum(len(early[i]) < len(whole[i]) for i in early) >= len(early) // 5  # 8 of 20 with torch 2.13
    # The parsed answers (POPE) and right/other counts (MME) per question are those of the whole answers.
    for task in ("pope", "mme"):
        assert (tmp_path / "early" / "units" / f"{task}.json").read_text() == \
            (tmp_path / "whole" / "units" / f"{task}.json").read_text()
    metrics = [json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("early", "whole")]
    assert metrics[0] == metrics[1]
    configs = [json.loads((tmp_path / run / "eval_config.json").read_text())["decoding"] for run in ("early", "whole")]
    assert configs[0]["pope"] == {**configs[1]["pope"], "stop_when_settled": True}
