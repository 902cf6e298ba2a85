"""The test live server and the test thread use the database the way the browser tests assume."""

from django.db import connections


def test_on_in_memory_sqlite_the_live_server_shares_the_test_threads_connection(live_server, transactional_db):
    # Run first in a process (as here, alone), the server used to open connections of its own to the shared
    # in-memory cache, and a test writing while a page polled failed at random ("database table is locked").
    connection = connections["default"]
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        assert live_server.thread.connections_override["default"] is connection
    else:  # PostgreSQL: every thread has its own connection; the test's data is committed (transactional_db)
        assert live_server.thread.connections_override == {}


def test_the_gate_closes_after_the_requests_in_progress_and_then_answers_503_without_the_application():
    import threading

    from tests.conftest import RequestGate

    entered, release, calls = threading.Event(), threading.Event(), []

    def application(environ, start_response):
        calls.append(environ["PATH_INFO"])
        entered.set()
        release.wait(30)
        start_response("200 OK", [])
        return [b"done"]

    gate = RequestGate(application)
    replies = []
    request = threading.Thread(target=lambda: replies.append(gate({"PATH_INFO": "/poll/"}, lambda *a: None)))
    request.start()
    entered.wait(30)
    closing = threading.Thread(target=gate.close, args=(30,))
    closing.start()
    closing.join(0.2)
    assert closing.is_alive()  # waits for the poll in progress (the database must not be flushed under it)
    release.set()
    closing.join(30)
    request.join(30)
    assert not closing.is_alive() and replies == [[b"done"]]
    statuses = []
    assert gate({"PATH_INFO": "/beat/"}, lambda status, headers: statuses.append(status)) == [b"the test is over"]
    assert statuses == ["503 Service Unavailable"] and calls == ["/poll/"]
