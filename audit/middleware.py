from .recording import current_request


class AuditActorMiddleware:
    """Makes the request (its user, path and address) known to ``audit.record`` and the receivers of user and
    permission changes while it is handled; outside a request (commands, the shell) there is none."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = current_request.set(request)
        try:
            return self.get_response(request)
        finally:
            current_request.reset(token)
