"""Local weights through Hugging Face transformers.

The model loads lazily on the first ``generate`` call, once per process. CUDA
is looked at only then, inside the worker process, never at import time: a
parent process that touched CUDA would break forked children.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from .base import (
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
from .bundled import is_bundled, resolve_bundled
from .limits import declared_context_window, tokens_past_limit, tokens_to_reach


class BatchTextStreamer:
    """Follows each row of a batch as generate() produces it: the time of its first token
    and, if ``on_text`` is given, its decoded text every PROGRESS_INTERVAL seconds.

    transformers' TextStreamer handles one sequence only; generate() calls
    ``put`` with one token per row per step, so a batch is easy to follow.
    """

    def __init__(self, tokenizer, batch_size: int, stop_ids: set[int], on_text: ProgressCallback | None):
        self.tokenizer, self.stop_ids, self.on_text = tokenizer, stop_ids, on_text
        self.tokens: list[list[int]] = [[] for _ in range(batch_size)]
        self.first_token_at: list[float | None] = [None] * batch_size
        self.finished = [False] * batch_size
        self.prompt_seen = False
        self.last_report = 0.0

    def put(self, value):
        if not self.prompt_seen:  # the first call carries the prompt
            self.prompt_seen = True
            return
        for row, token in enumerate(value.reshape(-1).tolist()):
            if self.finished[row]:
                continue
            if token in self.stop_ids:
                self.finished[row] = True
            else:
                self.tokens[row].append(token)
            if self.first_token_at[row] is None:
                self.first_token_at[row] = time.perf_counter()
        if self.on_text is None:
            return
        now = time.perf_counter()
        if now - self.last_report >= PROGRESS_INTERVAL:
            self.last_report = now
            self._report()

    def end(self):
        if self.on_text is not None:
            self._report()

    def _report(self):
        for row, tokens in enumerate(self.tokens):
            if tokens:
                self.on_text(row, self.tokenizer.decode(tokens, skip_special_tokens=True))


class CharLimitStop:
    """A generate() stopping criterion per row: a row is done once its new text reaches its request's
    char_limit (rows without one never stop here)."""

    def __init__(self, tokenizer, prompt_width: int, limits: list[int | None]):
        self.tokenizer, self.prompt_width, self.limits = tokenizer, prompt_width, limits

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        done = [
            bool(limit)
            and (input_ids.shape[1] - self.prompt_width) * 64 >= limit
            and len(self.tokenizer.decode(row[self.prompt_width :], skip_special_tokens=True).strip()) >= limit
            for row, limit in zip(input_ids, self.limits)
        ]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def speed_options(device: str, static_cache: str = "auto") -> dict:
    """Extra generate() options that pay off on this device.

    A static KV cache lets generate() compile its decoding step once and reuse it
    (measured for this project: 44 -> 110 tokens/s for a Llama-3-8B shape on an H100).
    "auto" uses it on CUDA only; on the CPU compilation costs more than it saves.
    """
    if static_cache == "on" or (static_cache == "auto" and device.startswith("cuda")):
        return {"cache_implementation": "static"}
    return {}


def resolve_model_path(model_name: str, cache_dir: Path) -> str:
    """A bundled short name, a local folder, or a Hugging Face hub id (returned as is)."""
    if is_bundled(model_name):
        return str(resolve_bundled(model_name, cache_dir))
    return model_name


class TransformersBackend(GenerationBackend):
    def __init__(
        self,
        model_name: str,
        *,
        cache_dir: Path,
        device: str = "auto",
        adapter_path: str = "",
        static_cache: str = "auto",
        continuous: bool = True,
        prefill_tokens: int = 2048,
        context_window: int | None = None,
        chunk_tokens: int | None = None,
        prefix_cache_bytes: int = 0,
        live_chunk_tokens: int | None = None,
        long_lane: bool = True,
    ):
        self.model_name = model_name
        self.context_window_override = context_window  # a configured window, instead of the model's own
        self._window = None
        self.adapter_path = adapter_path
        self.static_cache = static_cache
        self.continuous = continuous
        self.prefill_tokens = prefill_tokens
        self.chunk_tokens = chunk_tokens  # a longer prompt's chunks (default: prefill_tokens)
        # Pre-generated prompts' chunks while live turns are expected; when the last live turn came is kept
        # across sessions (the next question of a live debate comes after the judge has read).
        self.live_chunk_tokens = live_chunk_tokens
        self.live_seen_at: float | None = None
        self.long_lane = long_lane  # long pre-generated prompts in a batch of their own (lanes.py)
        # Recent prompts' caches, kept across generation sessions (a live debate's next round comes after
        # the judge has read and asked: the worker may have gone idle meanwhile). Made with the model.
        self.prefix_cache_bytes = prefix_cache_bytes
        self.prefix_cache = None
        self.cache_dir = Path(cache_dir)
        self.requested_device = device
        self._model = None
        self._tokenizer = None
        self._device = None
        self._lock = threading.Lock()

    def _load_tokenizer(self):
        """The tokenizer and the model's config, without the weights (enough to count prompt tokens)."""
        with self._lock:
            if self._tokenizer is not None:
                return
            from transformers import AutoConfig, AutoTokenizer

            path = resolve_model_path(self.model_name, self.cache_dir)
            tokenizer = AutoTokenizer.from_pretrained(path)
            tokenizer.padding_side = "left"  # decoder-only batches pad on the left
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            config = AutoConfig.from_pretrained(path)
            self._window = self.context_window_override or declared_context_window(
                config.to_dict(), tokenizer.model_max_length
            )
            self._tokenizer = tokenizer

    def _load(self):
        self._load_tokenizer()
        with self._lock:
            if self._model is not None:
                return
            import torch
            from transformers import AutoModelForCausalLM

            path = resolve_model_path(self.model_name, self.cache_dir)
            device = self.requested_device
            if device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
            tokenizer = self._tokenizer
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
            if self.adapter_path:  # a LoRA adapter (e.g. a distilled adversary) on top of the base weights
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, self.adapter_path).to(device)
            model.eval()
            self._tokenizer, self._model, self._device = tokenizer, model, device
            from .prefix_cache import PrefixCache

            self.prefix_cache = PrefixCache(self.prefix_cache_bytes)

    @property
    def keeps_prompt_caches(self) -> bool:
        # Only the continuous path keeps prompt caches: a model it does not support runs padded batches.
        from . import continuous

        loaded = self._model is not None
        return self.prefix_cache_bytes > 0 and self.continuous and loaded and continuous.supports(self._model)

    @property
    def device_name(self) -> str:
        if self._device is None:
            return "not loaded"
        if self._device.startswith("cuda"):
            import torch

            return f"{self._device} ({torch.cuda.get_device_name(self._device)})"
        return self._device

    def context_window(self) -> int | None:
        """The configured window, else the smaller real one of the model config's position limit and
        the tokenizer's model_max_length (docs/limits.md)."""
        self._load_tokenizer()
        return self._window

    def prompt_tokens(self, messages: list[dict]) -> int:
        self._load_tokenizer()
        return len(self._tokenizer(self._prompt_text(messages), add_special_tokens=False)["input_ids"])

    def _prompt_text(self, messages: list[dict]) -> str:
        if self._tokenizer.chat_template:
            return self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        # Base models without a chat template get the messages as plain text.
        return "\n\n".join(m["content"] for m in messages) + "\n\n"

    def choice_probabilities(self, messages: list[dict], labels: list[str]) -> list[float]:
        import torch

        self._load()
        tokenizer, model = self._tokenizer, self._model
        prompt = self._prompt_text(messages)
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(self._device)
        # A label may be written with or without a leading space. Keep the single tokens that
        # decode to exactly the label, so no token shared between labels (a bare space) counts.
        label_ids = []
        for label in labels:
            forms = {
                ids_[0]
                for form in (label, " " + label)
                if len(ids_ := tokenizer.encode(form, add_special_tokens=False)) == 1
                and tokenizer.decode(ids_).strip() == label
            }
            if not forms:
                raise ValueError(f"label {label!r} is not a single token for this tokenizer")
            label_ids.append(sorted(forms))
        if len({i for forms in label_ids for i in forms}) != sum(len(f) for f in label_ids):
            raise ValueError("labels share tokens")
        with torch.inference_mode():
            logits = model(**ids).logits[0, -1].float()
        log_probs = torch.log_softmax(logits, dim=-1)
        scores = torch.stack([torch.logsumexp(log_probs[torch.tensor(forms)], dim=0) for forms in label_ids])
        return torch.softmax(scores, dim=0).tolist()

    def _stop_ids(self) -> set[int]:
        """Tokens that end a generation: the model's end-of-sequence token(s) and the padding token."""
        eos = self._model.generation_config.eos_token_id
        return (set(eos if isinstance(eos, list) else [eos]) | {self._tokenizer.pad_token_id}) - {None}

    def generate_continuously(
        self,
        take: TakeRequests,
        on_done: OnDone,
        on_text: OnKeyText | None = None,
        capacity: int = 8,
        on_error: OnError | None = None,
    ) -> None:
        """Continuous batching (see continuous.py): requests join the running batch between decoding
        steps. Models whose cache cannot be joined that way, or ``continuous=False``, get padded batches."""
        from . import continuous
        from .lanes import Lanes

        first = take(capacity)
        if not first:
            return
        self._load()  # after taking work, so that a model which cannot load fails that work visibly
        if not self.continuous or not continuous.supports(self._model):
            handed_out = iter([first])
            return super().generate_continuously(
                lambda free: next(handed_out, None) or take(free), on_done, on_text, capacity, on_error
            )
        tokenizer = self._tokenizer

        def lane():
            return continuous.ContinuousBatcher(
                self._model,
                self._device,
                stop_ids=self._stop_ids(),
                pad_token_id=tokenizer.pad_token_id,
                max_rows=capacity,
                decode=lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
                prefill_tokens=self.prefill_tokens,
                chunk_tokens=self.chunk_tokens,
                prefix_cache=self.prefix_cache,
                live_chunk_tokens=self.live_chunk_tokens,
                live_seen_at=self.live_seen_at,
            )

        # Pre-generated prompts too long for one prefill run in a batch of their own (lanes.py), unless turned off.
        batcher = Lanes(lane(), lane(), long_tokens=self.prefill_tokens) if self.long_lane else lane()

        def submit(key, request):
            prompt = self._prompt_text(request.messages)
            batcher.submit(key, request, tokenizer(prompt, add_special_tokens=False)["input_ids"], prompt)
            self.live_seen_at = batcher.live_seen_at

        for key, request in first:
            submit(key, request)
        taker, last_report = Taker(take), time.perf_counter()
        finished, failed = [], False
        while True:
            # With no free row, only requests that may pause running rows are asked for (a judge waits on them).
            # Rows freed by requests that finished or failed are offered at once.
            due = batcher.idle or bool(finished) or failed
            for key, request in taker(batcher.free_rows, batcher.pausable_rows, due=due):
                submit(key, request)
            if batcher.idle:
                return
            try:
                finished, failed = batcher.step(), False
            except continuous.PrefillFailed as failure:  # those requests alone; the running batch is intact
                if on_error is None:
                    raise failure.error from failure
                finished, failed = [], True
                for key in failure.keys:
                    on_error(key, failure.error)
            # A request's first words go out at once (a judge may be waiting for them), the rest every interval.
            if on_text is not None and (batcher.first_words or time.perf_counter() - last_report >= PROGRESS_INTERVAL):
                last_report = time.perf_counter()
                for key, text in batcher.partial_texts():
                    on_text(key, text)
            for key, result in finished:
                on_done(key, result)

    def generate(
        self, requests: list[GenerationRequest], on_text: ProgressCallback | None = None
    ) -> list[GenerationResult]:
        if not requests:
            return []
        self._load()
        # One padded batch per distinct sampling setting (configs share settings).
        results: list[GenerationResult | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(
                (r.max_new_tokens, r.min_new_tokens, r.temperature, r.top_p, r.repetition_penalty), []
            ).append(i)
        for indices in groups.values():
            # Report progress with the caller's request indices, not the group's.
            group_on_text = (lambda row, text, indices=indices: on_text(indices[row], text)) if on_text else None
            for i, result in zip(indices, self._generate_group([requests[i] for i in indices], group_on_text)):
                results[i] = result
        return results

    def _generate_group(
        self, requests: list[GenerationRequest], on_text: ProgressCallback | None
    ) -> list[GenerationResult]:
        import torch

        tokenizer, model = self._tokenizer, self._model
        prompts = [self._prompt_text(r.messages) for r in requests]
        batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self._device)
        first = requests[0]
        if first.seed is not None:
            torch.manual_seed(first.seed)
        sampling = (
            {"do_sample": True, "temperature": first.temperature, "top_p": first.top_p}
            if first.temperature > 0
            else {"do_sample": False}
        )
        stop_ids = self._stop_ids()
        streamer = BatchTextStreamer(tokenizer, len(requests), stop_ids, on_text)
        prompt_width = batch["input_ids"].shape[1]
        limits = [r.char_limit for r in requests]
        stopping = {}
        if any(limits):
            from transformers import StoppingCriteriaList

            stopping["stopping_criteria"] = StoppingCriteriaList([CharLimitStop(tokenizer, prompt_width, limits)])
        from .continuous import without_cudnn_attention

        started = time.perf_counter()
        with torch.inference_mode(), without_cudnn_attention():
            output = model.generate(
                **stopping,
                **batch,
                max_new_tokens=first.max_new_tokens,
                min_new_tokens=first.min_new_tokens or None,
                pad_token_id=tokenizer.pad_token_id,
                repetition_penalty=first.repetition_penalty,
                **speed_options(self._device, self.static_cache),
                streamer=streamer,
                **sampling,
            )
        seconds = time.perf_counter() - started
        results = []

        def decode(ids):
            return tokenizer.decode(ids, skip_special_tokens=True)

        for row, prompt in enumerate(prompts):
            new_tokens = output[row, prompt_width:].tolist()
            # Count generated tokens up to and including the first end-of-sequence
            # (shorter rows of a batch are padded after it).
            length, stop_reason = len(new_tokens), "max_tokens"
            for pos, tok in enumerate(new_tokens):
                if tok in stop_ids:
                    length, stop_reason = pos + 1, "end"
                    break
            text_tokens = new_tokens[: length - (stop_reason == "end")]
            past = tokens_past_limit(text_tokens, decode, limits[row])
            if past is not None and stop_reason != "end" and tokens_to_reach(text_tokens, decode, limits[row]):
                stop_reason = "char_limit"
            results.append(
                GenerationResult(
                    text=decode(new_tokens[:length]).strip(),
                    stop_reason=stop_reason,
                    tokens_past_limit=past,
                    prompt_text=prompt,
                    tokens_in=int(batch["attention_mask"][row].sum()),
                    tokens_out=length,
                    seconds=seconds,
                    ttft_seconds=(streamer.first_token_at[row] - started) if streamer.first_token_at[row] else None,
                    batch_size=len(requests),
                    mean_batch_size=float(len(requests)),
                    seed_used=first.seed,
                )
            )
        return results
