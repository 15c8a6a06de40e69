"""Drives lntune serve's chat page in Debian's headless Chromium with selenium (scripts/ensure_chromium.sh
installs the browser and its driver). The browser test uses it, and so does the screenshot in docs/serving.md
(each --question asked in turn):

    python tests/chat_page_driver.py --url http://127.0.0.1:8000 --image photo.png \\
        --question "Is there a circle in the image?" --out docs/serving-chat-page.png
"""

import argparse
import tempfile
from pathlib import Path

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1000,640"]


def open_chromium(profile_dir):
    """A selenium driver for headless Chromium with a new empty profile in `profile_dir`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} missing: run `bash scripts/ensure_chromium.sh` (make install does)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS + [f"--user-data-dir={profile_dir}"]:
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))


def wait(driver, condition, seconds=60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds).until(lambda d: condition(d))


def open_page(driver, url: str) -> str:
    """Load the page; returns the model name it shows once /v1/models has answered."""
    driver.get(url)
    return wait(driver, lambda d: (text := d.find_element("id", "model").text) != "…" and text)


def choose_image(driver, path) -> None:
    driver.find_element("id", "image-input").send_keys(str(Path(path).resolve()))
    wait(driver, lambda d: d.find_element("id", "preview").is_displayed())


def ask(driver, question: str) -> str:
    """Type `question`, send it, and return the answer once its stream has ended (the page's error if it shows one)."""
    before = len(driver.find_elements("css selector", ".turn.assistant.done, .turn.error"))
    driver.find_element("id", "question").send_keys(question)
    driver.find_element("id", "send").click()
    ended = wait(driver, lambda d: len(found := d.find_elements("css selector", ".turn.assistant.done, .turn.error"))
                 > before and found)[-1]
    if "error" in ended.get_attribute("class"):
        raise AssertionError(f"the page shows an error: {ended.text}")
    return ended.text


def main() -> None:
    parser = argparse.ArgumentParser(description="screenshot lntune serve's chat page after one question")
    parser.add_argument("--url", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--question", required=True, action="append", help="repeat for follow-up questions")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as profile:
        driver = open_chromium(profile)
        try:
            print("model:", open_page(driver, args.url))
            choose_image(driver, args.image)
            for question in args.question:
                print("answer:", ask(driver, question))
            driver.save_screenshot(args.out)
        finally:
            driver.quit()


if __name__ == "__main__":
    main()
