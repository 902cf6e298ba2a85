#!/usr/bin/env python
"""Screenshots of the main judge and researcher states, from a running demo.

    python3 dev.py demo --port 8001 &      # then, once it is up:
    .venv/bin/python docs/take_screenshots.py --base http://127.0.0.1:8001

Writes PNGs to docs/screenshots/. Uses Debian's Chromium through Playwright. Run it on a fresh
demo (rm -r var/ first): it takes the judge's trials in their planned order, as a judge must, judging
the first live debate and skipping (with a reason) the trials it passes over.
"""

import argparse
import re
from pathlib import Path

from playwright.sync_api import sync_playwright

OUT = Path(__file__).resolve().parent / "screenshots"


def unstick(page):
    """Full-page screenshots draw a sticky header where the page was scrolled to; lay it flat."""
    page.add_style_tag(content=".question { position: static !important; }")


def open_next(page, base) -> bool:
    """Open the judge's next trial (the only one a judge may open); False when the queue is empty."""
    page.goto(base + "/judge/next/")
    return "/judge/trials/" in page.url


def skip_open_trial(page, reason):
    page.click("#skip summary")
    page.fill("#skip-reason", reason)
    page.click("#skip-button")
    page.wait_for_url("**/judge/")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    base = parser.parse_args().base
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(base + "/judge/")
        page.fill("#id_username", "judge")
        page.fill("#id_password", "judge-demo")
        page.click("button[type=submit]")
        page.wait_for_url("**/judge/")
        page.screenshot(path=OUT / "judge-queue.png", full_page=True)

        # A live debate: watch round 1 being written, ask a question, see the answer.
        while open_next(page, base):
            if "After each round you may ask" in (page.text_content(".rules") or ""):
                break
            skip_open_trial(page, "Screenshot tour: looking for a live debate.")
        page.wait_for_selector(".speech.in-progress, #live-controls:not([hidden])", timeout=120_000)
        unstick(page)
        page.screenshot(path=OUT / "live-writing.png", full_page=True)
        page.wait_for_selector("#live-controls:not([hidden])", timeout=180_000)
        page.fill("#question-text", "Which sentence of the text supports your answer? Quote it.")
        page.screenshot(path=OUT / "live-between-rounds.png", full_page=True)
        page.click("#ask")
        page.wait_for_function(
            "document.getElementById('live-status').textContent.startsWith('Round 2')", timeout=180_000
        )
        page.screenshot(path=OUT / "live-after-question.png", full_page=True)
        page.click("#end")
        page.wait_for_selector("#verdict-section:not([hidden])")
        page.check("#verdict-form input[name=chosen][value=A]")  # the leaning form has its own
        page.fill("#probability", "0.8")  # no default: the slider must be moved
        page.fill("#rationale", "Debater A answered my question with a quote.")
        page.screenshot(path=OUT / "live-verdict.png", full_page=True)

        page.click("text=Submit verdict and go to next")

        # Sandwiching: one trial alone, and one with an assistant (which kind is not shown).
        shot_naive = shot_assisted = False
        while not (shot_naive and shot_assisted) and open_next(page, base):
            rules = page.text_content(".rules") or ""
            unstick(page)
            if "on your own" in rules and not shot_naive:
                page.screenshot(path=OUT / "sandwich-naive.png", full_page=True)
                shot_naive = True
            elif "AI assistant" in rules and not shot_assisted:
                page.wait_for_selector("#live-controls:not([hidden])", timeout=180_000)
                page.fill("#question-text", "Does the text say this directly?")
                page.click("#ask")
                page.wait_for_function("document.querySelectorAll('.speech').length >= 3", timeout=180_000)
                page.wait_for_selector("#live-controls:not([hidden])", timeout=180_000)
                page.screenshot(path=OUT / "sandwich-assisted.png", full_page=True)
                shot_assisted = True
            if not (shot_naive and shot_assisted):
                skip_open_trial(page, "Screenshot tour: on to the next kind of trial.")

        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        phone.add_cookies(page.context.cookies())
        mobile = phone.new_page()
        mobile.goto(page.url)
        mobile.screenshot(path=OUT / "judge-trial-phone.png")

        admin = browser.new_page(viewport={"width": 1280, "height": 800})
        admin.goto(base + "/admin/")
        admin.fill("#id_username", "researcher")
        admin.fill("#id_password", "researcher-demo")
        admin.click("input[type=submit]")
        admin.goto(base + "/admin/judging/experiment/")
        admin.screenshot(path=OUT / "admin-experiments.png")
        ids = re.findall(r"/admin/judging/experiment/(\d+)/change/", admin.content())
        admin.goto(base + "/results/analysis/?" + "&".join(f"experiment={i}" for i in ids))
        admin.screenshot(path=OUT / "analysis.png", full_page=True)
        admin.goto(base + "/results/throughput/?preset=back-of-envelope-quoted")
        admin.screenshot(path=OUT / "throughput.png", full_page=True)
        browser.close()


if __name__ == "__main__":
    main()
