"""experiments/pope_probe.py (text probes): its report on hand-checked scores, its training questions and batches.

    python -m pytest experiments/test_pope_probe.py      # not part of `make test`: the probe is an experiment
"""

import importlib.util
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location("pope_probe", Path(__file__).parent / "pope_probe.py")
probe = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(probe)


def test_report_counts_positive_scores_as_yes():
    line = probe.report("x", [1.0, -1.0, 2.0, 0.5], [True, False, False, True])
    assert line == "x: n=4 AUC 0.500, accuracy 75.0%"


def test_yes_no_samples_are_true_about_their_scene(tmp_path):
    scenes = [{"file": f"train_{k}.png", "split": "train", "background": "grass",
               "objects": [{"size": "small", "color": "red", "category": "ball"},
                           {"size": "large", "color": "green", "category": "tree"}]} for k in range(50)]
    scenes.append({"file": "pope_0.png", "split": "eval", "background": "plain", "objects": []})
    (tmp_path / "world.json").write_text(probe.json.dumps({"categories": ["ball", "tree", "umbrella", "car"],
                                                          "images": scenes}))
    samples = probe.yes_no_samples(tmp_path)
    assert len(samples) == 100  # two per training scene, none about the eval scene
    for question, answer in samples:
        assert question.startswith("The image shows a small red ball, a large green tree on a grass background.\nIs there ")
        category = question.split()[-4]
        assert answer == ("Yes" if category in ("ball", "tree") else "No"), question
    assert {q.split()[-5] for q, _ in samples} == {"a", "an"}  # "an umbrella"
    assert 30 <= sum(answer == "Yes" for _, answer in samples) <= 70


def test_yes_no_batch_puts_the_loss_on_the_answer_only():
    from lntune.analysis.bench_presets import word_level_llama
    from lntune.data.templates import ensure_chat_template

    words = ["user", "assistant", "Is", "there", "a", "ball?", "Yes", "No", "tree", "here?"]
    _, tokenizer = word_level_llama(["<unk>", "<s>", "</s>", "<pad>", "\n"] + words, {"hidden_size": 8,
                                    "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2})
    tokenizer.pad_token = "<pad>"
    ensure_chat_template(tokenizer, "chatml")
    batch = probe.yes_no_batch(tokenizer, [("Is there a ball?", "Yes"), ("Is there a tree here?", "No")])
    yes, no, end, pad = (tokenizer.convert_tokens_to_ids(t) for t in ("Yes", "No", "<|im_end|>", "<pad>"))
    assert [row[row != -100].tolist() for row in batch["labels"]] == [[yes, end], [no, end]]
    assert batch["attention_mask"].sum(1).tolist() == [batch["input_ids"].shape[1] - 1, batch["input_ids"].shape[1]]
    assert batch["input_ids"][0, -1] == pad


def test_layernorm_side_parameters_are_the_block_norms_and_embeddings():
    from lntune.analysis.bench_presets import word_level_llama

    model, _ = word_level_llama(["<unk>", "<s>", "</s>", "w"], {"hidden_size": 8, "intermediate_size": 16,
                                                               "num_hidden_layers": 2, "num_attention_heads": 2})
    chosen = {id(p) for p in probe.layernorm_side_parameters(model)}
    names = sorted(n for n, p in model.named_parameters() if id(p) in chosen)
    assert names == ["model.embed_tokens.weight"] + [f"model.layers.{i}.{norm}.weight" for i in (0, 1)
                                                     for norm in ("input_layernorm", "post_attention_layernorm")]
