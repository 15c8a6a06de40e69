"""`lntune chat` answers one question about one image with the model's chat template, greedily by
default: the printed answer equals generate_batch's on the same prompt."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from test_eval_helpers import color_image, tiny_llava  # noqa: E402

from lntune.cli import main  # noqa: E402
from lntune.eval.generate import generate_batch, render_prompt  # noqa: E402


def test_chat_answers_one_question(tmp_path, capsys):
    model, processor = tiny_llava(seed=1)
    model_dir = tmp_path / "tiny"
    model.save_pretrained(model_dir)
    processor.save_pretrained(model_dir)
    image = tmp_path / "red.png"
    color_image(0).save(image)
    question = "What color is the ball?"
    expected_prompt = "<|im_start|>user\n<image>\nWhat color is the ball?<|im_end|>\n<|im_start|>assistant\n"
    assert render_prompt(processor, [{"role": "user", "content": "<image>\n" + question}]) == expected_prompt
    expected = generate_batch(model, processor, [expected_prompt], [color_image(0)], max_new_tokens=6)[0]

    assert main(["chat", "--model", str(model_dir), "--image", str(image), "--max-new-tokens", "6",
                 "--show-prompt", question]) == 0
    assert capsys.readouterr().out == expected_prompt + "\n" + expected + "\n"


def test_chat_bad_image_is_one_line_error(tmp_path, capsys):
    (tmp_path / "not-an-image.png").write_text("hello")
    assert main(["chat", "--model", str(tmp_path), "--image", str(tmp_path / "missing.png"), "hi"]) == 2
    assert capsys.readouterr().err == f"lntune: error: --image {tmp_path / 'missing.png'}: no such file\n"
    assert main(["chat", "--model", str(tmp_path), "--image", str(tmp_path / "not-an-image.png"), "hi"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lntune: error: --image {tmp_path / 'not-an-image.png'}: not a readable image")
    assert err.count("\n") == 1
