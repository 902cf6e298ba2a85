"""HTTP hardening shared by every page: no caching of dynamic replies, the Content-Security-Policy, and the reply
to a locked-out login (django-axes). Settings in settings.py; README, "Security settings"."""

from __future__ import annotations

from csp.constants import UNSAFE_INLINE
from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers

# The researchers' pages (Django admin, results): their markup has inline style attributes (admin list colours)
# and the analysis plots are SVG with style attributes; scripts stay 'self' there too.
INLINE_STYLE_NAMESPACES = frozenset({"admin", "results"})


class NoStoreMiddleware:
    """Every dynamic reply (judge pages, state.json, queue.json, beats, exports) is ``Cache-Control: no-store``,
    so no browser or proxy keeps a judge's trial or a researcher's data; a view that sets its own Cache-Control
    keeps it. Static files are answered by WhiteNoise above this middleware and keep their caching."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not response.has_header("Cache-Control"):
            add_never_cache_headers(response)
        return response


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's middleware with CONTENT_SECURITY_POLICY, plus inline styles on the researchers' pages."""

    def get_policy_parts(self, request, response, report_only: bool = False) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        match = getattr(request, "resolver_match", None)
        if match is not None and INLINE_STYLE_NAMESPACES & set(match.namespaces) and parts.update is None:
            parts.update = {"style-src": [UNSAFE_INLINE]}
        return parts


def lockout_response(request, original_response=None, credentials=None):
    """django-axes' reply to a login refused for too many failures (AXES_LOCKOUT_CALLABLE): 429 with Retry-After;
    JSON for scripts (HTTP Basic on the export URL, or asking for JSON), a page for people."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    message = (
        f"Too many failed logins for this account or from this address: logging in is refused for {minutes} minutes "
        "after the last attempt, even with the right password. A researcher can unlock it sooner."
    )
    if "Authorization" in request.headers or "application/json" in request.headers.get("Accept", ""):
        response = JsonResponse({"error": message}, status=429)
    else:
        response = render(request, "registration/locked_out.html", {"message": message}, status=429)
    response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    return response
