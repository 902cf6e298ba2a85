"""Models behind an OpenAI-compatible HTTP server (vLLM, TGI, `transformers serve`, hosted APIs).

For models too large for a worker's GPU: the worker sends chat completions and
records what comes back. Standard library only (urllib), so it adds no dependency.

- Each request has a timeout; connection errors, timeouts, 429 and 5xx answers are
  retried with exponential backoff (1 s, 2 s, 4 s, ... up to ``max_retries``).
- Any other answer (400, 401, 404, ...) fails at once with the server's message.
- Requests of a batch are sent concurrently (the server batches them).
- ``choice_probabilities`` needs a server that returns ``top_logprobs`` (vLLM does;
  `transformers serve` does not, and says so with a clear error).
"""
from __future__ import annotations

import json
import math
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from .base import GenerationBackend, GenerationRequest, GenerationResult, ProgressCallback

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
    def __init__(self, model_name: str, *, api_base: str, api_key: str | None = None, timeout: float = 120.0,
                 max_retries: int = 4, backoff: float = 1.0, concurrency: int = 16):
        if not api_base:
            raise BackendError("an OpenAI-compatible model needs an API base URL, e.g. http://gpu-host:8000/v1")
        self.model_name = model_name
        self.api_base = api_base.rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("DEBATE_OPENAI_API_KEY", "")
        self.timeout, self.max_retries, self.backoff, self.concurrency = timeout, max_retries, backoff, concurrency

    @property
    def device_name(self) -> str:
        return f"server {self.api_base}"

    def _post(self, path: str, payload: dict) -> dict:
        url = f"{self.api_base}{path}"
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        body = json.dumps(payload).encode()
        last_problem = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read())
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

    def _complete(self, request: GenerationRequest) -> GenerationResult:
        payload = {"model": self.model_name, "messages": request.messages, "max_tokens": request.max_new_tokens,
                   "temperature": request.temperature, "top_p": request.top_p}
        if request.seed is not None:
            payload["seed"] = request.seed
        if request.min_new_tokens:
            payload["min_tokens"] = request.min_new_tokens  # vLLM's extension; others ignore it
        if request.repetition_penalty != 1.0:
            payload["repetition_penalty"] = request.repetition_penalty  # vLLM's and TGI's extension
        started = time.perf_counter()
        answer = self._post("/chat/completions", payload)
        seconds = time.perf_counter() - started
        try:
            text = answer["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise BackendError(f"{self.api_base} answered without a completion: {str(answer)[:300]}") from None
        usage = answer.get("usage") or {}
        return GenerationResult(
            text=text.strip(), prompt_text=json.dumps(request.messages, ensure_ascii=False),
            tokens_in=int(usage.get("prompt_tokens") or 0), tokens_out=int(usage.get("completion_tokens") or 0),
            seconds=seconds, seed_used=request.seed,
        )

    def generate(self, requests: list[GenerationRequest], on_text: ProgressCallback | None = None) -> list[GenerationResult]:
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            results = list(pool.map(self._complete, requests))
        if on_text is not None:  # no token streaming from this backend yet: report each text once done
            for i, result in enumerate(results):
                on_text(i, result.text)
        return results

    def choice_probabilities(self, messages: list[dict], labels: list[str]) -> list[float]:
        answer = self._post("/chat/completions", {
            "model": self.model_name, "messages": messages, "max_tokens": 1, "temperature": 0,
            "logprobs": True, "top_logprobs": 20,
        })
        try:
            top = answer["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        except (KeyError, IndexError, TypeError):
            raise BackendError(
                f"{self.api_base} returns no log-probabilities, which model-alone scoring, model judges and "
                "best-of-N need; use a server that supports top_logprobs (e.g. vLLM) or the transformers backend"
            ) from None
        return label_probabilities(top, labels)
