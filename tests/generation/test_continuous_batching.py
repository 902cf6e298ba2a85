"""Continuous batching (inference/continuous.py) on real transformers models built from configs:
requests join a running batch and leave it when done, and the text does not depend on the batching."""

import contextlib
import math
from dataclasses import replace
from unittest import mock

import pytest
import torch

from generation import worker
from generation.backends import get_backend
from generation.selection import ready_turn_ids
from generation.session import GenerationSession
from generation.worker import generate_batch, generate_ready_turns
from inference import GenerationRequest, continuous
from judging.models import Trial, Turn
from judging.services import claims_release_dead_worker, experiment_launch, live_move, trial_open

PROMPTS = [
    "hello there",
    "a much longer prompt about the weather in the mountains today",
    "x",
    "what is two plus two, tell me",
]


def ask(text, **options):
    settings = {"max_new_tokens": 12, "temperature": 0.0, "top_p": 1.0} | options
    return GenerationRequest(messages=[{"role": "user", "content": text}], **settings)


def every_step():
    """The transformers backend asks for new requests at every decoding step, instead of every
    TAKE_INTERVAL seconds: when a request joins then depends on steps, never on the machine's speed."""
    return mock.patch("inference.base.TAKE_INTERVAL", 0)


@contextlib.contextmanager
def live_takes_only_between():
    """Full takes only when a request finished or the run went idle; a take for live requests alone at every
    step in between: what a request joins by then depends on steps and on which take, never on the clock."""
    with (
        mock.patch("inference.base.TAKE_INTERVAL", math.inf),
        mock.patch("inference.base.LIVE_TAKE_INTERVAL", 0),
        mock.patch("inference.base.LIVE_TAKE_SHARE", math.inf),  # a take's own duration never spaces the next
    ):
        yield


def staggered(backend, requests, capacity, at_once=False, every=1):
    """Run ``requests`` through ``generate_continuously``, handing out one at each call of take (or as
    many as fit, ``at_once``), or only at every ``every``-th call; returns results by index and the
    order they finished in."""
    pending, results, order, calls = list(enumerate(requests)), {}, [], []

    def take(free, pausable=0):
        assert 0 <= free <= capacity
        calls.append(free)
        if (len(calls) - 1) % every:
            return []
        taken = pending[: free if at_once else min(free, 1)]
        del pending[: len(taken)]
        return taken

    def done(key, result):
        results[key] = result
        order.append(key)

    backend.generate_continuously(take, done, capacity=capacity)
    assert not pending
    return results, order


def tiny(architecture, tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    sizes = dict(vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id)
    if architecture == "gpt2":
        return GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=4, **sizes)).eval()
    config_class, model_class = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}[
        architecture
    ]
    return model_class(
        config_class(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            **sizes,
        )
    ).eval()


def cpu_batcher(model, tokenizer, **options):
    """A ContinuousBatcher on the CPU for ``model``, stopping and padding with the tokenizer's end token."""
    return continuous.ContinuousBatcher(
        model,
        "cpu",
        stop_ids={tokenizer.eos_token_id},
        pad_token_id=tokenizer.eos_token_id,
        decode=lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
        **options,
    )


@pytest.mark.parametrize("architecture", ["llama", "qwen2", "gpt2"])
def test_greedy_text_with_requests_joining_midway_equals_one_prompt_at_a_time_generate(architecture, tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = tiny(architecture, tokenizer)
    assert continuous.supports(model)
    alone = []
    for prompt in PROMPTS:
        ids = tokenizer(prompt, return_tensors="pt")
        out = model.generate(**ids, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.eos_token_id)
        alone.append(tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip())
    batcher = cpu_batcher(model, tokenizer, max_rows=3)
    results, submitted, steps = {}, 0, 0
    while submitted < len(PROMPTS) or not batcher.idle:
        if submitted < len(PROMPTS) and steps % 3 == 0:  # a new request every third step: joins a running batch
            prompt = PROMPTS[submitted]
            batcher.submit(submitted, ask(prompt), tokenizer(prompt)["input_ids"], prompt)
            submitted += 1
        results.update(batcher.step())
        steps += 1
    assert [results[i].text for i in range(len(PROMPTS))] == alone
    assert max(r.batch_size for r in results.values()) == 3  # the fourth waited for a free row


def test_a_request_joins_a_running_batch_and_leaves_before_it(tiny_model_dir):
    backend = get_backend("transformers", str(tiny_model_dir))
    long = ask("a long answer please", max_new_tokens=200, min_new_tokens=200)
    short = ask("short", max_new_tokens=3, min_new_tokens=3)
    with every_step():  # the short one is handed out once the long one has run 2 steps (prefill, 1 decoding)
        results, order = staggered(backend, [long, short], capacity=4, every=3)
    assert order == [1, 0]  # the short request, handed out later, finished first
    assert results[1].batch_size == 2 and results[1].tokens_out == 3 and results[0].tokens_out == 200
    assert results[0].ttft_seconds < results[0].seconds and results[1].seconds < results[0].seconds
    assert 1 < results[0].mean_batch_size < 2  # alone for part of its life


def test_between_full_takes_a_busy_run_asks_for_live_requests_alone_and_one_joins_at_once(tiny_model_dir):
    """Between its takes for any request (here only when the run is idle or a request finished), a running batch
    asks every LIVE_TAKE_INTERVAL (here every step) for live requests alone: a judge's question joins at once, a
    pre-generated request offered at the same moment waits for the next full take."""
    backend = get_backend("transformers", str(tiny_model_dir))
    pending = {}
    calls, order, results = [], [], {}

    def take(free, pausable=0):  # a queue: live requests for any row, pre-generated ones for free rows only
        calls.append((free, pausable))
        if len(calls) == 1:
            return [("long", ask("a long answer please", max_new_tokens=40, min_new_tokens=40))]
        if len(calls) == 2:  # both arrive now, once the long request was handed out
            pending["pre"] = ask("pre-generated", max_new_tokens=3, min_new_tokens=3)
            pending["live"] = ask("a judge's question", max_new_tokens=3, min_new_tokens=3, priority=1)
        taken = [(key, r) for key, r in pending.items() if r.priority > 0][: free + pausable]
        taken += [(key, r) for key, r in pending.items() if r.priority <= 0][: max(0, free - len(taken))]
        for key, _ in taken:
            del pending[key]
        return taken

    def done(key, result):
        results[key] = result
        order.append(key)

    with live_takes_only_between():
        backend.generate_continuously(take, done, capacity=4)
    assert order == ["live", "pre", "long"]
    assert calls[1] == (0, 3)  # live requests alone, for any of the 3 rows left: "live" was handed out then
    assert results["live"].batch_size == 2 and results["pre"].batch_size == 2  # "pre" joined once "live" was done
    assert results["pre"].tokens_out == results["live"].tokens_out == 3 and results["long"].tokens_out == 40


def test_sampled_text_depends_on_the_seed_not_on_the_batch(tiny_model_dir):
    backend = get_backend("transformers", str(tiny_model_dir))
    requests = [ask(p, temperature=0.9, top_p=0.9, repetition_penalty=1.2, seed=100 + i) for i, p in enumerate(PROMPTS)]
    together, _ = staggered(backend, requests, capacity=4, at_once=True)
    apart, _ = staggered(backend, requests, capacity=2)
    assert {r.batch_size for r in together.values()} == {4} and max(r.batch_size for r in apart.values()) <= 2
    assert [together[i].text for i in range(4)] == [apart[i].text for i in range(4)]
    assert all(r.seed_used == 100 + i for i, r in together.items())
    reseeded, _ = staggered(backend, [ask(PROMPTS[0], temperature=0.9, top_p=0.9, seed=7)], capacity=1)
    assert reseeded[0].text != together[0].text


def test_models_whose_cache_cannot_be_joined_fall_back_to_padded_batches(tiny_model_dir):
    from transformers import AutoTokenizer, MistralConfig, MistralForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    sliding = MistralForCausalLM(
        MistralConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            sliding_window=16,
        )
    )
    assert not continuous.supports(sliding)
    backend = get_backend("transformers", str(tiny_model_dir))
    backend.continuous = False  # the same fallback, on a model that would support it
    try:
        results, _ = staggered(backend, [ask(p) for p in PROMPTS], capacity=2)
    finally:
        backend.continuous = True
    assert {r.batch_size for r in results.values()} == {1}  # one request per closed batch, as handed out
    assert all(r.text for r in results.values())


def question_while_busy(live, busy, judge, *, launched_with_the_question=None, takes=every_step):
    """Open the live debate's trial and generate its opening round, launch ``busy``, then run a worker's
    loop (asking for new turns as ``takes`` says) that asks the live trial a question once ``busy``'s
    first-round turns are being written, launching ``launched_with_the_question`` at the same moment."""
    experiment_launch(experiment=live)
    trial = Trial.objects.get(experiment=live)
    trial_open(trial=trial)
    while generate_batch(live.pk):  # the opening round
        pass
    experiment_launch(experiment=busy)
    take, asked, takes_while_busy = GenerationSession.take, [], []

    def ask_while_busy(session, *args, **kwargs):
        if not asked and Turn.objects.filter(trial__experiment=busy, round=1, status="running").exists():
            takes_while_busy.append(1)
            if len(takes_while_busy) == 3:  # busy's turns have run 2 steps (prefill, 1 decoding step)
                asked.append(live_move(trial_id=trial.pk, judge=judge, action="ask", text="Why?"))
                if launched_with_the_question is not None:
                    experiment_launch(experiment=launched_with_the_question)
        return take(session, *args, **kwargs)

    # The worker asks for turns at every decoding step; no time limit: a slow machine only takes longer.
    with mock.patch.object(GenerationSession, "take", ask_while_busy), takes():
        generate_ready_turns(max_seconds=math.inf)
    assert asked, "the question was asked while the busy experiment's turns were being written"
    return trial


def test_between_full_takes_a_worker_claims_a_judges_question_and_leaves_pre_generated_turns_for_the_next(
    make_model_config, make_experiment, tiny_model_dir, judge
):
    """Through the worker and the database: the take for live turns alone, between full takes, claims the judge's
    question's turn into the running batch, and leaves pending the pre-generated turns launched at the same
    moment, with free rows for them, until the next full take (when the answer finished)."""
    config = make_model_config(tiny_model_dir, max_new_tokens=200)
    live = make_experiment(
        config, mode="live", rounds=3, min_rounds=1, num_questions=1, turn_style="sequential", char_limit=60
    )
    slow = make_experiment(config, name="slow", num_questions=1, rounds=1, char_limit=8000)
    later = make_experiment(config, name="later", num_questions=1, rounds=1, char_limit=60)
    with mock.patch.object(worker, "ready_turns", side_effect=worker.ready_turns) as looks:
        trial = question_while_busy(live, slow, judge, launched_with_the_question=later, takes=live_takes_only_between)
    # Trials were read only when a take could find something (LiveTurnNews): 13 looks, 47 when read at every take.
    assert looks.call_count < 25
    answer = Turn.objects.filter(trial=trial, round=2, speaker__in=["A", "B"]).order_by("index").first()  # first
    slow_turns, later_turns = (list(Turn.objects.filter(trial__experiment=e)) for e in (slow, later))
    assert {t.status for t in [answer, *slow_turns, *later_turns]} == {"done"}
    assert {t.attempts for t in [answer, *slow_turns, *later_turns]} == {1}
    assert answer.finished_at < min(t.finished_at for t in slow_turns)  # joined the running batch
    assert min(t.claimed_at for t in later_turns) >= answer.finished_at  # not by the take for live turns


def test_a_judges_question_is_answered_inside_a_batch_that_is_already_running(
    make_model_config, make_experiment, tiny_model_dir, judge
):
    """A worker busy with long pre-generated turns takes a live debate's new turn into its running batch."""
    config = make_model_config(tiny_model_dir, max_new_tokens=200)  # 10 times the answer's tokens
    live = make_experiment(
        config, mode="live", rounds=3, min_rounds=1, num_questions=1, turn_style="sequential", char_limit=60
    )  # answers of at most 20 tokens
    slow = make_experiment(config, name="slow", num_questions=1, rounds=1, char_limit=8000)  # 200 tokens
    trial = question_while_busy(live, slow, judge)
    answer = Turn.objects.get(trial=trial, round=2, speaker="A")
    slow_turns = list(Turn.objects.filter(trial__experiment=slow))
    assert answer.status == "done" and {t.status for t in slow_turns} == {"done"}
    assert answer.model_settings["batch_size"] == 3  # beside the two slow speeches
    assert answer.finished_at < min(t.finished_at for t in slow_turns)
    assert Turn.objects.get(trial=trial, speaker="judge").response_delay_seconds is not None


def test_a_model_failing_mid_batch_puts_its_turns_back_with_the_error(
    make_model_config, make_experiment, tiny_model_dir
):
    experiment = make_experiment(make_model_config(tiny_model_dir), num_questions=2, rounds=1)
    experiment_launch(experiment=experiment)
    steps = []

    def failing_step(self):
        steps.append(1)
        if len(steps) > 2:
            raise RuntimeError("CUDA out of memory (simulated)")
        return original_step(self)

    original_step = continuous.ContinuousBatcher.step
    with mock.patch.object(continuous.ContinuousBatcher, "step", failing_step):
        assert generate_ready_turns(max_seconds=math.inf) == 0
    turns = Turn.objects.filter(trial__experiment=experiment)
    assert {t.status for t in turns} == {"pending"} and {t.attempts for t in turns} == {1}
    assert all("out of memory" in t.error and not t.claim_token for t in turns)
    assert generate_ready_turns(max_seconds=math.inf) == 4  # the next session does them


def test_a_prefill_takes_waiting_requests_up_to_its_token_budget(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = tiny("llama", tokenizer)
    prompts = [tokenizer(p)["input_ids"] for p in PROMPTS]

    def run(prefill_tokens):
        batcher = cpu_batcher(model, tokenizer, max_rows=4, prefill_tokens=prefill_tokens)
        for i, ids in enumerate(prompts):
            batcher.submit(i, ask(PROMPTS[i]), ids)
        joined, results = [], {}
        while not batcher.idle:
            prefills = batcher.prefill_steps
            results.update(batcher.step())
            if batcher.prefill_steps > prefills:
                joined.append(len(batcher.rows) + len(results))
        return joined, results

    assert len(prompts[0]) + len(prompts[1]) > len(prompts[1]) >= len(prompts[2]) + len(prompts[3])
    joined, small = run(len(prompts[1]))  # room for the longest prompt, or the two short last ones
    assert joined == [1, 2, 4]  # one prefill per prefill step (each followed by a decoding step)
    _, large = run(10_000)
    assert [small[i].text for i in range(4)] == [large[i].text for i in range(4)]


def test_a_model_the_batcher_cannot_join_is_served_in_padded_batches(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer, MistralConfig, MistralForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    MistralForCausalLM(
        MistralConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            sliding_window=16,
            eos_token_id=tokenizer.eos_token_id,
        )
    ).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    backend = get_backend("transformers", str(tmp_path))
    results, _ = staggered(backend, [ask(p) for p in PROMPTS], capacity=4, at_once=True)
    assert not continuous.supports(backend._model)
    assert {r.batch_size for r in results.values()} == {4} and all(r.text for r in results.values())


def test_a_request_whose_prefill_fails_fails_alone(tiny_model_dir):
    backend = get_backend("transformers", str(tiny_model_dir))
    prefill = continuous.ContinuousBatcher._prefill

    def prefill_or_fail(self, joining):
        if any("explode" in row.prompt_text for row in joining):
            raise RuntimeError("CUDA out of memory (simulated)")
        return prefill(self, joining)

    backend.generate([ask("load the model")])
    backend.prefix_cache.clear()  # earlier tests' prompts: no prefill here may start from a cached prefix

    # The failing one is live (it joins by a take for live requests alone); the one after it is not, so it joins at
    # the next full take: at once, since the failure freed a row, not when the long one finishes.
    requests = [ask("fine one", max_new_tokens=300, min_new_tokens=300), ask("explode", priority=1), ask("fine two")]
    pending, results, errors = list(enumerate(requests)), {}, {}

    def take(free, pausable=0):  # one per prefill: the failure is alone
        return [pending.pop(0)] if pending and (free or pending[0][1].priority > 0) else []

    with mock.patch.object(continuous.ContinuousBatcher, "_prefill", prefill_or_fail), live_takes_only_between():
        backend.generate_continuously(take, results.__setitem__, capacity=4, on_error=errors.__setitem__)
    assert set(results) == {0, 2} and set(errors) == {1} and "out of memory" in str(errors[1])
    assert results[0].tokens_out == 300  # the running request went on
    assert list(results) == [2, 0]  # "fine two" was taken as soon as the failure freed a row


def test_a_group_whose_prefill_fails_is_prefilled_one_by_one_and_only_the_culprit_fails(tiny_model_dir):
    """A prefill of several requests fails (out of memory for the group, or one request's fault): each is
    prefilled on its own, so the others write what they would have and only one that fails alone fails."""
    backend = get_backend("transformers", str(tiny_model_dir))
    backend.generate([ask("load the model")])
    backend.prefix_cache.clear()  # earlier tests' prompts: no prefill here may start from a cached prefix
    requests = [ask("fine one"), ask("explode"), ask("fine two")]
    expected = {i: r.text for i, r in enumerate(backend.generate(requests)) if i != 1}
    backend.prefix_cache.clear()
    group, chunk = continuous.ContinuousBatcher._prefill, continuous.ContinuousBatcher._prefill_chunk
    grouped = []

    def group_or_fail(self, joining):
        grouped.append(len(joining))
        if len(joining) > 1:
            raise RuntimeError("CUDA out of memory (simulated, for the group)")
        return group(self, joining)

    def chunk_or_fail(self, row):
        if "explode" in row.prompt_text:
            raise RuntimeError("CUDA out of memory (simulated, for this request)")
        return chunk(self, row)

    pending, results, errors = list(enumerate(requests)), {}, {}

    def take(free, pausable=0):
        taken = pending[:free]
        del pending[:free]
        return taken  # all three at once: they are prefilled together first

    with (
        mock.patch.object(continuous.ContinuousBatcher, "_prefill", group_or_fail),
        mock.patch.object(continuous.ContinuousBatcher, "_prefill_chunk", chunk_or_fail),
    ):
        backend.generate_continuously(take, results.__setitem__, capacity=4, on_error=errors.__setitem__)
    assert grouped == [3]  # one group prefill, which failed; then each on its own
    assert set(errors) == {1} and "for this request" in str(errors[1])
    assert {i: r.text for i, r in results.items()} == expected


def test_a_stale_claim_is_ignored_when_its_row_finishes(make_model_config, make_experiment, tiny_model_dir):
    from inference import GenerationResult

    experiment = make_experiment(make_model_config(tiny_model_dir), num_questions=1, rounds=1)
    experiment_launch(experiment=experiment)
    ids = ready_turn_ids(experiment.pk, limit=1)
    session = GenerationSession(experiment.debater_model, lambda limit, urgent=0, pregenerated=None: list(ids))
    [(old_key, _)] = session.take(1)
    claims_release_dead_worker(Turn.objects.filter(pk=ids[0]))  # e.g. the reconciler thought it dead
    [(new_key, _)] = session.take(1)  # claimed again (the same session, or another worker)
    result = GenerationResult(text="late", prompt_text="p", tokens_in=1, tokens_out=1, seconds=0.1)
    session.on_done(old_key, result)  # the stale row: ignored, no error
    assert Turn.objects.get(pk=ids[0]).status == "running" and session.written == 0
    session.on_done(new_key, replace(result, text="current"))
    turn = Turn.objects.get(pk=ids[0])
    assert turn.status == "done" and turn.text == "current" and turn.attempts == 2


def test_a_live_turn_of_another_model_on_the_queue_is_served_before_more_of_this_one(
    make_model_config, make_experiment, tiny_model_dir, judge
):
    busy = make_experiment(
        make_model_config(tiny_model_dir, name="pre-generation", max_new_tokens=40),  # running when asked
        num_questions=2,
        rounds=2,
        char_limit=8000,
        name="busy",
    )
    live = make_experiment(
        make_model_config(tiny_model_dir, name="live model", max_new_tokens=20),
        mode="live",
        rounds=3,
        min_rounds=1,
        num_questions=1,
        turn_style="sequential",
        char_limit=60,
    )
    trial = question_while_busy(live, busy, judge)
    answer = Turn.objects.get(trial=trial, round=2, speaker="A")
    later = Turn.objects.filter(trial__experiment=busy, round=2)
    assert answer.status == "done" and {t.status for t in later} == {"done"}
    assert answer.finished_at < min(t.finished_at for t in later)  # served before the next busy round


def recording_cudnn_attention_flag():
    """Patch scaled_dot_product_attention to record, at each call, whether cuDNN's kernel could be chosen."""
    attention, flags = torch.nn.functional.scaled_dot_product_attention, []

    def recording(*args, **kwargs):
        flags.append(torch.backends.cuda.cudnn_sdp_enabled())
        return attention(*args, **kwargs)

    return mock.patch.object(torch.nn.functional, "scaled_dot_product_attention", recording), flags


def test_every_attention_call_of_the_batcher_runs_without_cudnn_attention(tiny_model_dir):
    """cuDNN's attention builds a graph per key length, at every decoding step (1.5 ms of host time per layer on
    an H200): the batcher turns it off for its own forward passes (prefill, chunks, decoding) and only those."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = tiny("llama", tokenizer)
    batcher = cpu_batcher(model, tokenizer, max_rows=2, prefill_tokens=4)  # the longer prompts in chunks
    for i, prompt in enumerate(PROMPTS):
        batcher.submit(i, ask(prompt, max_new_tokens=3), tokenizer(prompt)["input_ids"], prompt)
    before = torch.backends.cuda.cudnn_sdp_enabled()
    patch, flags = recording_cudnn_attention_flag()
    with patch:
        while not batcher.idle:
            batcher.step()
    layers = model.config.num_hidden_layers
    assert batcher.prefill_steps > len(PROMPTS)  # chunks as well as whole prompts were prefilled
    assert len(flags) > batcher.prefill_steps * layers  # and rows decoded
    assert not any(flags)
    assert torch.backends.cuda.cudnn_sdp_enabled() == before  # the process's setting is left as it was


def test_padded_batches_run_without_cudnn_attention_too(tiny_model_dir):
    backend = get_backend("transformers", str(tiny_model_dir))
    patch, flags = recording_cudnn_attention_flag()
    with patch:
        results = backend.generate([ask(p) for p in PROMPTS[:2]])  # generate(): one padded batch
    assert all(r.text for r in results)
    assert flags and not any(flags)
