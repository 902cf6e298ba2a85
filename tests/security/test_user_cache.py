"""Each request's user read from the cache (debate_platform/auth.py): a request reads no user from the database
once it is cached, and a saved change (a new password, a deactivation, a deletion) reaches the next request."""

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture
def cached_users(settings):
    settings.USER_CACHE_SECONDS = 60  # as where the cache is shared (Redis); here one process's memory
    cache.clear()
    yield
    cache.clear()


def queue(client):
    return client.get(reverse("judging:queue"))


def user_reads(queries) -> int:
    table = get_user_model()._meta.db_table
    return sum(1 for q in queries if f'FROM "{table}"' in q["sql"])


def test_a_cached_user_is_not_read_again(cached_users, client, judge):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(judge)
    with CaptureQueriesContext(connection) as first:
        assert queue(client).status_code == 200
    with CaptureQueriesContext(connection) as second:
        assert queue(client).status_code == 200
    assert user_reads(first.captured_queries) == 1 and user_reads(second.captured_queries) == 0
    assert len(second.captured_queries) == len(first.captured_queries) - 1


@pytest.mark.parametrize("change", ["a new password", "deactivated", "deleted"])
def test_a_saved_change_to_the_user_reaches_the_next_request(cached_users, client, judge, change):
    client.force_login(judge)
    assert queue(client).status_code == 200  # the user is cached
    if change == "a new password":
        judge.set_password("another-pass-456")
        judge.save()  # Django's session hash no longer matches: the other sessions end
    elif change == "deactivated":
        judge.is_active = False
        judge.save()
    else:
        judge.verdicts.all().delete()
        judge.trials.all().delete()
        judge.delete()
    reply = queue(client)
    assert reply.status_code == 302 and "/accounts/login/" in reply["Location"]


def test_a_user_read_while_its_change_was_not_yet_committed_is_dropped_at_the_commit(
    cached_users, judge, django_capture_on_commit_callbacks
):
    from debate_platform.auth import CachedModelBackend, _key

    with django_capture_on_commit_callbacks(execute=True):
        judge.is_active = False
        judge.save()  # dropped from the cache at once...
        cache.set(_key(judge.pk), "the old row, read by another request before the commit")
    assert cache.get(_key(judge.pk)) is None  # ...and again at the commit
    assert CachedModelBackend().get_user(judge.pk) is None  # inactive


def test_nothing_is_cached_where_the_cache_is_per_process(settings, judge, django_assert_num_queries):
    from debate_platform.auth import CachedModelBackend, _key

    settings.USER_CACHE_SECONDS = 0
    cache.clear()
    for _ in range(2):
        with django_assert_num_queries(1):
            assert CachedModelBackend().get_user(judge.pk) == judge
    assert cache.get(_key(judge.pk)) is None


def test_saving_a_user_drops_it_from_the_cache(cached_users, judge):
    from debate_platform.auth import CachedModelBackend, _key

    CachedModelBackend().get_user(judge.pk)
    assert cache.get(_key(judge.pk)) is not None
    get_user_model().objects.get(pk=judge.pk).save()  # another copy of the user, as another process would save
    assert cache.get(_key(judge.pk)) is None
