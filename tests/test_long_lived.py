"""A server process's start-up objects kept out of the garbage collector's full passes (debate_platform/long_lived.py),
as gunicorn's workers do once they have loaded the app (gunicorn.conf.py)."""

import gc
import re
import runpy
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.template import engines
from django.test import override_settings
from django.urls import clear_url_caches, get_resolver

from debate_platform.long_lived import freeze, warm_up_and_freeze

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def unfrozen():
    """The test process as it was: what a test froze is returned to the collector's generations."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def cached_loader():
    [engine] = engines.all()
    [loader] = engine.engine.template_loaders  # the cached loader, as without DEBUG
    return loader


def test_a_web_process_loads_its_views_and_templates_then_freezes_them(unfrozen):
    [folder] = settings.TEMPLATES[0]["DIRS"]
    project_templates = {path.relative_to(folder).as_posix() for path in Path(folder).rglob("*") if path.is_file()}
    assert len(project_templates) > 40
    cached_loader().reset()  # as in a new process: no template compiled yet (earlier tests rendered some)
    clear_url_caches()  # as in a new process: the URLconf not yet read
    assert warm_up_and_freeze() > 100_000  # Django, every view module, scipy...: tens of thousands of objects each
    assert "url_patterns" in get_resolver().__dict__  # read (and so every view module imported) by the warm-up
    assert project_templates <= set(cached_loader().get_template_cache)  # compiled once, now, not on a first request
    assert {"judging.views", "results.views"} <= set(sys.modules)


def test_garbage_made_after_the_freeze_is_still_collected(unfrozen):
    freeze()

    class Cycle:
        pass

    made = Cycle()
    made.itself = made
    del made
    assert gc.collect() >= 1  # the cycle above: requests' garbage goes as before


def test_gunicorns_workers_freeze_once_the_app_is_loaded(unfrozen):
    logged = []

    class Worker:
        class log:
            info = staticmethod(lambda message, *args: logged.append(message % args))

    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    config["post_worker_init"](Worker())
    assert gc.get_freeze_count() > 100_000
    [message] = logged
    assert re.fullmatch(r"\d{6,} long-lived objects kept out of the garbage collector's passes", message)


def test_a_template_that_does_not_compile_is_logged_and_the_worker_still_starts(unfrozen, tmp_path, caplog):
    (tmp_path / "fine.html").write_text("{{ name }}")
    (tmp_path / "broken.html").write_text("{% if %}")
    (tmp_path / ".fine.html.swp").write_bytes(b"\xff\xfe an editor's swap file")  # not a template: left alone
    engine = {**settings.TEMPLATES[0], "DIRS": [tmp_path], "APP_DIRS": False}
    with override_settings(TEMPLATES=[engine]):
        assert warm_up_and_freeze() > 100_000
        assert set(cached_loader().get_template_cache) == {"fine.html"}
    assert [record.getMessage() for record in caplog.records] == ["template broken.html did not compile"]
