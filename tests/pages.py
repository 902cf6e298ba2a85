"""Helpers for tests that read rendered pages."""

import re


def without_csrf_tokens(html: str) -> str:
    """``html`` without the values of its CSRF tokens: random letters, masked anew in each reply, which may spell
    anything (such as "nan", which the analysis pages are checked never to show)."""
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', 'name="csrfmiddlewaretoken"', html)
