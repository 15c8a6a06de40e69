"""The chat page of `lntune serve`, end to end in Debian's headless Chromium (selenium): upload a world image,
ask an existence question, and see the streamed answer equal generate_batch's; a second question keeps the
first turn in the conversation; "New chat" starts over."""

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from chat_page_driver import ask, choose_image, open_chromium, open_page  # noqa: E402
from serve_helpers import running_server, save_tiny_model  # noqa: E402

from lntune.eval.generate import generate_batch, render_prompt  # noqa: E402
from lntune.eval.tasks.base import user_turn  # noqa: E402
from lntune.world.instruct import q_exists  # noqa: E402
from lntune.world.render import render_scene  # noqa: E402
from lntune.world.scenes import sample_scene  # noqa: E402


def test_chat_page_streams_answers_and_keeps_turns(tmp_path):
    rng = random.Random(3)
    scene = sample_scene(rng, grid=2, image_size=32, max_objects=3)
    image_path = tmp_path / "world.png"
    render_scene(scene, 32).save(image_path)
    question = q_exists(scene, rng, plain=True, present=True)[0]
    assert question.startswith("Is there a")
    follow_up = "What color is the ball?"

    with running_server(save_tiny_model(tmp_path / "tiny-llava")) as (url, engine):
        image = render_scene(scene, 32)

        def expected(messages):
            prompt = render_prompt(engine.processor, messages)
            return generate_batch(engine.model, engine.processor, [prompt], [image], max_new_tokens=256)[0]

        first = expected([user_turn(question)])
        second = expected([user_turn(question), {"role": "assistant", "content": first},
                           {"role": "user", "content": follow_up}])
        driver = open_chromium(tmp_path / "chromium-profile")
        try:
            assert open_page(driver, url) == "tiny-llava"
            choose_image(driver, image_path)
            assert ask(driver, question) == first
            assert ask(driver, follow_up) == second
            turns = [(e.get_attribute("class"), e.text) for e in driver.find_elements("css selector", ".turn")]
            assert turns == [("turn user", question), ("turn assistant done", first),
                             ("turn user", follow_up), ("turn assistant done", second)]
            driver.find_element("id", "new-chat").click()
            assert driver.find_elements("css selector", ".turn") == []
            assert not driver.find_element("id", "preview").is_displayed()
        finally:
            driver.quit()
