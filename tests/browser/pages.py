"""Moving around the judge's pages in Chromium."""


def goto_trial(page, url: str) -> None:
    """Open a trial page as the judge does: go there and, if the trial has not been started, press *Start*
    (a POST: viewing a page starts nothing)."""
    page.goto(url)
    if page.locator("#start").count():
        with page.expect_navigation():
            page.click("#start")
