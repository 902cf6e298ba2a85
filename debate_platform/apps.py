from django.apps import AppConfig


class DebatePlatformConfig(AppConfig):
    name = "debate_platform"
    verbose_name = "Debate platform"

    def ready(self):
        # In every process that can save a user (web, workers, management commands), not only in those that have
        # read one: a saved user is dropped from the cache of request users.
        from . import receivers  # noqa: F401  (connects the signal receivers)
