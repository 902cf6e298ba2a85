"""A server process's long-lived objects kept out of the garbage collector's full passes.

Python's cyclic garbage collector now and then walks every object the process holds (a full collection), holding the
GIL throughout. In a web worker (Django, every view module, the templates, scipy for the analysis pages: about
190,000 objects) one took 350-530 ms on the load test's machine, about once a minute per worker, in which none of the
worker's requests or pushed updates moved (docs/benchmarks.md, issue 12); a generation worker holds more (torch and
transformers). What a process loads at its start lives as long as it does: ``gc.freeze()`` moves it to a generation
that collections skip, so a full collection walks only what was made since. What requests make is collected as before.
"""

from __future__ import annotations

import gc
import logging
from pathlib import Path

from django.template import engines
from django.urls import get_resolver

log = logging.getLogger(__name__)
TEMPLATE_SUFFIXES = {".html", ".txt"}  # the templates folder's kinds (not an editor's swap file, say)


def freeze() -> int:
    """Collect the garbage there is now (frozen garbage would be kept for good), then freeze every object left.
    Returns the objects frozen in all."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def warm_up_and_freeze() -> int:
    """Load what a web process would otherwise load on its first requests, then freeze it all (``freeze``): the
    URLconf, and with it every view module, and each template of the project's template folders, compiled into the
    template engine's cached loader. Returns the objects frozen. A template that does not compile is logged and left
    for its page to fail on as it would have: the warm-up never stops a worker from starting."""
    get_resolver().url_patterns  # imports every view module the URLconf names
    for engine in engines.all():
        for folder in map(Path, engine.dirs):
            for path in sorted(folder.rglob("*")):
                if path.is_file() and path.suffix in TEMPLATE_SUFFIXES:
                    name = path.relative_to(folder).as_posix()
                    try:
                        engine.get_template(name)
                    except Exception:
                        log.exception("template %s did not compile", name)
    return freeze()
