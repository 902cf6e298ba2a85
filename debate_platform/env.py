"""Small typed readers for settings from environment variables."""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def envstr(name: str, default: str) -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, not {value!r}")


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value is None or value == "" else int(value)


# Only where DEBUG is on and no key is given: a key anyone can read in this file.
DEBUG_ONLY_SECRET_KEY = "insecure-debug-only-key-never-used-with-debug-off"


def secret_key(*, debug: bool, key_file: Path) -> str:
    """DJANGO_SECRET_KEY, else the contents of ``key_file`` where it exists, else (DEBUG only) a public key.

    With DEBUG off and no key, refuse to start: a public key lets anyone forge a session."""
    key = os.environ.get("DJANGO_SECRET_KEY", "").strip()
    if not key and key_file.is_file():
        key = key_file.read_text().strip()
    if key:
        return key
    if debug:
        return DEBUG_ONLY_SECRET_KEY
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set and DJANGO_DEBUG is off: the platform will not start with a public key. "
        "Set DJANGO_SECRET_KEY to a long random string (e.g. the output of "
        "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`), or put one in the file named by "
        f"DJANGO_SECRET_KEY_FILE (now {key_file}); `python3 dev.py demo` writes var/secret_key for the demo."
    )


def envrate(name: str, default: str) -> tuple[int, int]:
    """A rate "N/S": at most N in S seconds, as (N, S)."""
    value = os.environ.get(name) or default
    count, _, seconds = value.partition("/")
    try:
        rate = int(count), int(seconds)
    except ValueError:
        rate = (0, 0)
    if rate[0] < 1 or rate[1] < 1:
        raise ValueError(f"{name} must be N/S (at most N in S seconds, both positive), not {value!r}")
    return rate
