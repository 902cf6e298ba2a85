"""The OpenAI-compatible backend against a real `transformers serve` started here, plus failures."""

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from unittest import mock

import pytest

from inference import GenerationRequest
from inference.openai_backend import BackendError, OpenAICompatibleBackend, label_probabilities


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    """`transformers serve` on the tiny model: a real OpenAI-compatible HTTP server."""
    cli = shutil.which("transformers", path=str(Path(sys.executable).parent)) or shutil.which("transformers")
    assert cli, "the transformers CLI (transformers[serving]) is not installed"
    port = free_port()
    log = open(tmp_path_factory.mktemp("serve") / "serve.log", "wb")
    process = subprocess.Popen(
        [cli, "serve", str(tiny_model_dir), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    # Wait until it answers or exits; the deadline only guards against a hang (a loaded machine takes long to start it).
    deadline = time.monotonic() + 600
    while process.poll() is None and time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base + "/health", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail(f"transformers serve did not start (exit status {process.poll()})")
    yield base + "/v1"
    process.terminate()
    process.wait(timeout=30)


def ask(text, **kw):
    return GenerationRequest(
        messages=[{"role": "user", "content": text}], max_new_tokens=kw.get("n", 8), temperature=0.0, top_p=1.0
    )


def test_it_generates_a_batch_through_a_real_server(server, tiny_model_dir):
    backend = OpenAICompatibleBackend(str(tiny_model_dir), api_base=server)
    results = backend.generate([ask("one"), ask("two words"), ask("three words here")])
    assert len(results) == 3
    for r in results:
        assert r.text and 0 < r.tokens_out <= 8 and r.tokens_in > 0 and r.seconds > 0
    assert json.loads(results[2].prompt_text) == [{"role": "user", "content": "three words here"}]
    assert results[0].tokens_in < results[2].tokens_in


def test_a_debate_is_generated_by_a_server_model(server, tiny_model_dir, make_model_config, make_experiment):
    from generation.worker import generate_batch
    from judging.models import Turn
    from judging.services import experiment_launch

    config = make_model_config(tiny_model_dir, backend="openai", api_base=server, max_new_tokens=10)
    experiment = make_experiment(config, num_questions=1, rounds=1)
    experiment_launch(experiment=experiment)
    assert generate_batch(experiment.pk) == 2
    for turn in Turn.objects.filter(trial__experiment=experiment):
        assert turn.status == "done" and turn.text and turn.tokens_out
        assert turn.model_settings["api_base"] == server and turn.model_settings["device"] == f"server {server}"


def test_a_server_without_log_probabilities_is_a_clear_error(server, tiny_model_dir):
    backend = OpenAICompatibleBackend(str(tiny_model_dir), api_base=server)
    with pytest.raises(BackendError, match="returns no log-probabilities"):
        backend.choice_probabilities([{"role": "user", "content": "A or B?"}], ["A", "B"])


def test_an_unreachable_server_is_retried_then_named(tiny_model_dir):
    backend = OpenAICompatibleBackend("m", api_base=f"http://127.0.0.1:{free_port()}/v1", max_retries=2, backoff=0.01)
    started = time.perf_counter()
    with pytest.raises(BackendError, match=r"could not be reached .*gave up after 3 attempts"):
        backend.generate([ask("hello")])
    assert time.perf_counter() - started >= 0.03  # two backoff pauses: 0.01 s and 0.02 s


def test_a_client_error_fails_at_once_with_the_servers_message(server):
    backend = OpenAICompatibleBackend("m", api_base=server.replace("/v1", "/nope"), max_retries=3, backoff=5)
    with mock.patch("urllib.request.urlopen", wraps=urllib.request.urlopen) as urlopen:
        with pytest.raises(BackendError, match="answered 404"):
            backend.generate([ask("hello")])
    assert urlopen.call_count == 1  # not retried (counted, not timed)


def test_overloaded_answers_are_retried_with_backoff():
    calls = []

    class Flaky(BaseHTTPRequestHandler):
        def do_POST(self):
            calls.append(time.perf_counter())
            self.rfile.read(int(self.headers["Content-Length"]))
            if len(calls) < 3:
                self.send_response(503)
                self.end_headers()
                self.wfile.write(b"busy")
                return
            body = json.dumps(
                {"choices": [{"message": {"content": " fine "}}], "usage": {"prompt_tokens": 5, "completion_tokens": 1}}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        backend = OpenAICompatibleBackend(
            "m", api_base=f"http://127.0.0.1:{httpd.server_address[1]}/v1", max_retries=3, backoff=0.05
        )
        [result] = backend.generate([ask("hi")])
    finally:
        httpd.shutdown()
    assert result.text == "fine" and result.tokens_out == 1 and len(calls) == 3
    assert calls[1] - calls[0] >= 0.05 and calls[2] - calls[1] >= 0.1  # exponential backoff


def test_label_probabilities_from_top_logprobs():
    import math

    top = [
        {"token": " A", "logprob": math.log(0.5)},
        {"token": "B", "logprob": math.log(0.3)},
        {"token": "A", "logprob": math.log(0.1)},
        {"token": "C", "logprob": math.log(0.1)},
    ]
    assert label_probabilities(top, ["A", "B"]) == pytest.approx([0.6 / 0.9, 0.3 / 0.9])
    with pytest.raises(BackendError, match="none of the labels"):
        label_probabilities([{"token": "C", "logprob": 0.0}], ["A", "B"])


def test_an_openai_config_needs_its_server_url(db):
    from django.core.exceptions import ValidationError

    from judging.models import ModelConfig

    with pytest.raises(ValidationError, match="base URL"):
        ModelConfig(name="x", model_name="m", backend="openai").full_clean()


def test_live_text_streams_from_a_real_server_and_requests_run_as_they_are_handed_out(server, tiny_model_dir):
    backend = OpenAICompatibleBackend(str(tiny_model_dir), api_base=server)
    pending = [("first", ask("one", n=8)), ("second", ask("two words", n=8))]
    partial, results = {}, {}

    def take(free, pausable=0):
        return [pending.pop(0)] if pending and free else []  # one at a time: the second joins later

    backend.generate_continuously(
        take, results.__setitem__, lambda key, text: partial.setdefault(key, []).append(text), capacity=4
    )
    assert set(results) == {"first", "second"}
    for key, result in results.items():
        assert result.text and result.tokens_out > 0 and result.tokens_in > 0  # usage came with the stream
        assert 0 < result.ttft_seconds <= result.seconds
        assert partial[key] and result.text.startswith(partial[key][0].strip())


class Streaming(BaseHTTPRequestHandler):
    """A tiny OpenAI-style server: streams the prompt's words back one chunk at a time, slowly for "slow"."""

    def do_POST(self):
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        words = payload["messages"][0]["content"].split()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for word in words:
            if word == "broken":
                self.wfile.write(b'data: {"error": {"message": "model crashed"}}\n\n')
                return
            if "slow" in words:
                getattr(self.server, "pace", lambda: time.sleep(0.3))()
            chunk = {"choices": [{"delta": {"content": word + " "}}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        usage = {"choices": [], "usage": {"prompt_tokens": len(words), "completion_tokens": len(words)}}
        self.wfile.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())

    def do_GET(self):  # the model list, as vLLM gives it (with max_model_len)
        listing = {"data": [{"id": "m", "object": "model", "max_model_len": 4096}, {"id": "other", "object": "model"}]}
        body = json.dumps(listing).encode() if self.path == "/v1/models" else b"{}"
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def streaming_server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Streaming)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def test_a_request_handed_out_later_finishes_before_a_slow_one_and_streams_its_words():
    pending = [("slow", ask("slow and steady words here")), ("quick", ask("quick answer"))]
    order, partial, sent, progress = [], {}, [], threading.Condition()

    def pace():
        """The slow stream's next word goes out once the client has shown the words before it (and the
        last one once the quick request is done), then 0.3 s later: more than PROGRESS_INTERVAL, so every
        word is shown. What happens first is decided by events, not by how fast the machine is."""
        with progress:
            progress.wait_for(lambda: len(partial.get("slow", [])) == len(sent) and (len(sent) < 4 or order), 600)
        sent.append(1)
        time.sleep(0.3)

    def on_done(key, result):
        with progress:
            order.append((key, result))
            progress.notify_all()

    def on_text(key, text):
        with progress:
            partial.setdefault(key, []).append(text)
            progress.notify_all()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Streaming)
    httpd.pace = pace
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        backend = OpenAICompatibleBackend("m", api_base=f"http://127.0.0.1:{httpd.server_address[1]}/v1")
        backend.generate_continuously(
            lambda free, pausable=0: [pending.pop(0)] if pending and free else [], on_done, on_text, capacity=2
        )
    finally:
        httpd.shutdown()
    assert [key for key, _ in order] == ["quick", "slow"]
    slow = dict(order)["slow"]
    assert slow.text == "slow and steady words here" and slow.tokens_out == 5
    assert partial["slow"][0] == "slow " and len(partial["slow"]) >= 3  # reported as the words arrived
    assert 0.2 < slow.ttft_seconds < slow.seconds


def test_an_error_inside_a_stream_is_a_clear_error(streaming_server):
    backend = OpenAICompatibleBackend("m", api_base=streaming_server)
    pending = [("k", ask("this is broken"))]
    with pytest.raises(BackendError, match="stopped the stream: .*model crashed"):
        backend.generate_continuously(
            lambda free, pausable=0: [pending.pop()] if pending else [], lambda *a: None, lambda *a: None
        )


def test_one_failing_request_fails_alone_and_the_others_finish(streaming_server):
    backend = OpenAICompatibleBackend("m", api_base=streaming_server)
    pending = [("ok", ask("slow but fine")), ("bad", ask("this is broken")), ("also ok", ask("fine too"))]
    results, errors = {}, {}
    backend.generate_continuously(
        lambda free, pausable=0: [pending.pop(0)] if pending and free else [],
        results.__setitem__,
        lambda key, text: None,
        capacity=3,
        on_error=errors.__setitem__,
    )  # streamed
    assert set(results) == {"ok", "also ok"} and set(errors) == {"bad"}
    assert isinstance(errors["bad"], BackendError) and results["ok"].text == "slow but fine"


def test_a_servers_context_window_is_configured_or_the_max_model_len_it_lists(streaming_server):
    assert OpenAICompatibleBackend("m", api_base=streaming_server).context_window() == 4096
    assert OpenAICompatibleBackend("m", api_base=streaming_server, context_window=1000).context_window() == 1000
    assert OpenAICompatibleBackend("other", api_base=streaming_server).context_window() is None  # not listed
    unreachable = OpenAICompatibleBackend("m", api_base=f"http://127.0.0.1:{free_port()}/v1", timeout=1)
    assert unreachable.context_window() is None
    backend = OpenAICompatibleBackend("m", api_base=streaming_server)
    assert backend.prompt_tokens([{"role": "user", "content": "x" * 300}]) >= 100  # 3 characters a token


def test_a_streamed_reply_is_closed_when_its_text_reaches_the_character_limit(streaming_server):
    backend = OpenAICompatibleBackend("m", api_base=streaming_server)
    words = " ".join(f"word{i}" for i in range(200))
    results = {}
    backend.generate_continuously(
        lambda free, pausable=0, pending=[(0, dataclasses.replace(ask(words), char_limit=40))]: (
            [pending.pop()] if pending else []
        ),
        results.__setitem__,
        on_text=lambda key, text: None,
    )
    assert results[0].stop_reason == "char_limit" and 40 <= len(results[0].text) < 60
