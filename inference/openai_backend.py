"""Models behind an OpenAI-compatible HTTP server (vLLM, TGI, `transformers serve`, hosted APIs).

For models too large for a worker's GPU: the worker sends chat completions and
records what comes back. Standard library only (urllib), so it adds no dependency.

- Each request has a timeout; connection errors, timeouts, 429 and 5xx answers are
  retried with exponential backoff (1 s, 2 s, 4 s, ... up to ``max_retries``).
- Any other answer (400, 401, 404, ...) fails at once with the server's message.
- Requests are sent concurrently (the server batches them): a closed batch at once, or, under
  ``generate_continuously``, each as soon as it is handed out, so a judge's question never waits for
  other requests to finish.
- With a text callback (live turns), completions are streamed (server-sent events) and partial
  text is reported as it arrives; time to first token is then measured.
- ``choice_probabilities`` needs a server that returns ``top_logprobs`` (vLLM does;
  `transformers serve` does not, and says so with a clear error).
"""

from __future__ import annotations

import json
import math
import os
import queue
import time
import urllib.error
import urllib.request
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Callable

from .base import (
    LIVE_TAKE_INTERVAL,
    PROGRESS_INTERVAL,
    GenerationBackend,
    GenerationRequest,
    GenerationResult,
    OnDone,
    OnError,
    OnKeyText,
    ProgressCallback,
    Taker,
    TakeRequests,
)

RETRY_STATUSES = {408, 429, 500, 502, 503, 504}


class BackendError(RuntimeError):
    """A request the server could not or would not answer; the message says which and why."""


def label_probabilities(top_logprobs: list[dict], labels: list[str]) -> list[float]:
    """Probabilities of ``labels`` among a first token's top log-probabilities, renormalised.

    Entries whose token is the label, with or without surrounding whitespace, count for it.
    """
    mass = [0.0] * len(labels)
    for entry in top_logprobs:
        token = entry.get("token", "").strip()
        if token in labels:
            mass[labels.index(token)] += math.exp(entry["logprob"])
    total = sum(mass)
    if total == 0:
        raise BackendError(f"none of the labels {labels} is among the server's top log-probabilities")
    return [m / total for m in mass]


class OpenAICompatibleBackend(GenerationBackend):
    def __init__(
        self,
        model_name: str,
        *,
        api_base: str,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 4,
        backoff: float = 1.0,
        concurrency: int = 16,
        context_window: int | None = None,
    ):
        if not api_base:
            raise BackendError("an OpenAI-compatible model needs an API base URL, e.g. http://gpu-host:8000/v1")
        self.model_name = model_name
        self.api_base = api_base.rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("DEBATE_OPENAI_API_KEY", "")
        self.timeout, self.max_retries, self.backoff, self.concurrency = timeout, max_retries, backoff, concurrency
        self.context_window_override = context_window
        self._window: int | None = None
        self._window_asked = False

    def context_window(self) -> int | None:
        """The configured window, else the ``max_model_len`` the server's /models lists for this model
        (vLLM reports it), asked once; None if neither says. Prompt tokens are then estimated from
        characters (``prompt_tokens``), on the long side."""
        if self.context_window_override:
            return self.context_window_override
        if not self._window_asked:
            self._window_asked = True
            try:
                request = urllib.request.Request(f"{self.api_base}/models", headers=self._headers())
                with urllib.request.urlopen(request, timeout=min(self.timeout, 10)) as response:
                    listed = json.loads(response.read()).get("data") or []
                for entry in listed:
                    if entry.get("id") == self.model_name and isinstance(entry.get("max_model_len"), int):
                        self._window = entry["max_model_len"]
            except (OSError, ValueError, AttributeError):  # no listing: the window stays unknown
                pass
        return self._window

    def _headers(self) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    @property
    def device_name(self) -> str:
        return f"server {self.api_base}"

    def _post(self, path: str, payload: dict, read: Callable | None = None):
        """POST ``payload`` as JSON, retrying what may pass; returns the parsed answer, or what
        ``read(response)`` returns when given (a streamed answer is read as it arrives)."""
        url = f"{self.api_base}{path}"
        headers = self._headers()
        body = json.dumps(payload).encode()
        last_problem = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return read(response) if read else json.loads(response.read())
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode("utf-8", "replace")[:500]
                if exc.code not in RETRY_STATUSES:
                    raise BackendError(f"{url} answered {exc.code}: {detail}") from None
                last_problem = f"answered {exc.code}: {detail}"
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last_problem = f"could not be reached ({getattr(exc, 'reason', exc)})"
            except json.JSONDecodeError:
                raise BackendError(f"{url} answered with something that is not JSON") from None
        raise BackendError(f"{url} {last_problem}; gave up after {self.max_retries + 1} attempts")

    def _complete(self, request: GenerationRequest, on_text: Callable[[str], None] | None = None) -> GenerationResult:
        """One chat completion; streamed, with partial text reported to ``on_text``, when it is given."""
        payload = {
            "model": self.model_name,
            "messages": request.messages,
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
        }
        if request.seed is not None:
            payload["seed"] = request.seed
        if request.min_new_tokens:
            payload["min_tokens"] = request.min_new_tokens  # vLLM's extension; others ignore it
        if request.repetition_penalty != 1.0:
            payload["repetition_penalty"] = request.repetition_penalty  # vLLM's and TGI's extension
        started = time.perf_counter()
        if on_text is None:
            answer = self._post("/chat/completions", payload)
            try:
                text = answer["choices"][0]["message"]["content"] or ""
            except (KeyError, IndexError, TypeError):
                raise BackendError(f"{self.api_base} answered without a completion: {str(answer)[:300]}") from None
            usage, first_token_at = answer.get("usage") or {}, None
            stop_reason = None
        else:
            payload |= {"stream": True, "stream_options": {"include_usage": True}}
            text, usage, first_token_at, stop_reason = self._post(
                "/chat/completions",
                payload,
                read=lambda response: self._read_stream(response, on_text, request.char_limit),
            )
        finished = time.perf_counter()
        return GenerationResult(
            text=text.strip(),
            prompt_text=json.dumps(request.messages, ensure_ascii=False),
            tokens_in=int(usage.get("prompt_tokens") or 0),
            tokens_out=int(usage.get("completion_tokens") or 0),
            seconds=finished - started,
            seed_used=request.seed,
            ttft_seconds=first_token_at - started if first_token_at else None,
            stop_reason=stop_reason,
        )

    def _read_stream(
        self, response, on_text: Callable[[str], None], char_limit: int | None = None
    ) -> tuple[str, dict, float | None, str | None]:
        """Read server-sent chat completion chunks: (text, usage if the server sent it, time of the first
        text, "char_limit" if it was stopped there). Once the text reaches ``char_limit`` characters the
        stream is closed (the server stops generating; how many tokens it wrote meanwhile is not known)."""
        parts, usage, first_at, reported_at = [], {}, None, 0.0
        for raw in response:
            if char_limit and len("".join(parts).strip()) >= char_limit:
                return "".join(parts), usage, first_at, "char_limit"
            line = raw.decode("utf-8", "replace").strip()
            if not line.startswith("data:"):
                continue  # blank separators, comments, event names
            data = line[len("data:") :].strip()
            if data == "[DONE]":
                break
            try:
                chunk = json.loads(data)
            except json.JSONDecodeError:
                raise BackendError(f"{self.api_base} streamed something that is not JSON: {data[:200]}") from None
            if chunk.get("error"):
                raise BackendError(f"{self.api_base} stopped the stream: {str(chunk['error'])[:300]}")
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content") or ""
                if piece:
                    parts.append(piece)
                    now = time.perf_counter()
                    if first_at is None or now - reported_at >= PROGRESS_INTERVAL:
                        first_at = first_at or now
                        reported_at = now
                        on_text("".join(parts))
        return "".join(parts), usage, first_at, None

    def generate(
        self, requests: list[GenerationRequest], on_text: ProgressCallback | None = None
    ) -> list[GenerationResult]:
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            results = list(pool.map(self._complete, requests))
        if on_text is not None:  # report each text once done (continuous runs stream instead)
            for i, result in enumerate(results):
                on_text(i, result.text)
        return results

    def generate_continuously(
        self,
        take: TakeRequests,
        on_done: OnDone,
        on_text: OnKeyText | None = None,
        capacity: int = 8,
        on_error: OnError | None = None,
    ) -> None:
        """Each request is sent as soon as ``take`` hands it out, up to ``capacity`` at once; results,
        errors and streamed text are passed on from this thread (the callbacks write to the database).
        Every failure here concerns one request: it goes to ``on_error`` (raised if that is not given)."""
        texts: queue.SimpleQueue = queue.SimpleQueue()
        running = {}
        pool = ThreadPoolExecutor(max_workers=capacity)
        try:
            taker, done = Taker(take), set()
            while True:
                for key, request in taker(capacity - len(running), due=not running or bool(done)):
                    report = (lambda text, key=key: texts.put((key, text))) if on_text else None
                    running[pool.submit(self._complete, request, report)] = key
                if not running:
                    return
                done, _ = wait(running, timeout=LIVE_TAKE_INTERVAL, return_when=FIRST_COMPLETED)
                while not texts.empty():
                    on_text(*texts.get())
                for future in done:
                    key = running.pop(future)
                    if future.exception() is None:
                        on_done(key, future.result())
                    elif on_error is not None:
                        on_error(key, future.exception())
                    else:
                        raise future.exception()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def choice_probabilities(self, messages: list[dict], labels: list[str]) -> list[float]:
        answer = self._post(
            "/chat/completions",
            {
                "model": self.model_name,
                "messages": messages,
                "max_tokens": 1,
                "temperature": 0,
                "logprobs": True,
                "top_logprobs": 20,
            },
        )
        try:
            top = answer["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        except (KeyError, IndexError, TypeError):
            raise BackendError(
                f"{self.api_base} returns no log-probabilities, which model-alone scoring, model judges and "
                "best-of-N need; use a server that supports top_logprobs (e.g. vLLM) or the transformers backend"
            ) from None
        return label_probabilities(top, labels)
