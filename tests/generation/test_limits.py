"""Prompts that fit the model's context window, chunked prefills, and speeches that stop at the
character limit (issue 12, parts 2 and 5; docs/limits.md)."""

from __future__ import annotations

import json

import pytest

from generation.backends import get_backend
from generation.worker import generate_batch
from inference import GenerationRequest, continuous
from inference.limits import context_window_from_files, declared_context_window, tokens_past_limit, tokens_to_reach
from judging.exports import turn_rows
from judging.importers import import_questions
from judging.models import Turn
from judging.protocols.prompts import (
    CUT_MARKER,
    PASSAGE_TRUNCATED,
    PromptDoesNotFit,
    end_at_limit,
    fit_passage,
    truncate_passage,
)
from judging.services import experiment_launch
from tests.generation.test_continuous_batching import cpu_batcher

PARAGRAPH = "The river rose in spring. Farmers moved their herds to the hills. The mill stopped for a week.\n\n"


# ------------------------------------------------------------------------------------------ pure rules --
def test_a_passage_that_fits_is_kept_whole():
    assert truncate_passage("short text.", 100) == "short text."


def test_a_long_passage_keeps_its_start_cut_at_a_paragraph_break_with_a_visible_marker():
    passage = PARAGRAPH * 40
    shown = truncate_passage(passage, 1000)
    kept, marker = shown.split("\n\n" + PASSAGE_TRUNCATED)
    assert marker == "" and passage.startswith(kept) and len(kept) <= 1000
    assert kept.endswith("The mill stopped for a week.")  # the last paragraph break within the limit
    assert len(kept) >= 0.8 * 1000 - len(PARAGRAPH)


def test_without_a_paragraph_break_a_passage_is_cut_at_a_sentence_end_then_a_space():
    sentences = "One fact here. " * 100
    assert truncate_passage(sentences, 300).split("\n\n")[0].endswith("fact here.")
    words = "word " * 200
    assert truncate_passage(words, 300).split("\n\n")[0] == ("word " * 60).strip()
    assert truncate_passage("x" * 500, 0) == PASSAGE_TRUNCATED


def test_a_prompt_is_fitted_by_truncating_its_passage_as_little_as_needed():
    def build(passage):
        return [{"role": "user", "content": f"Source text: {passage}\n\nQuestion: why?"}]

    def count(messages):  # one token per 4 characters
        return len(messages[0]["content"]) // 4

    passage = PARAGRAPH * 2000  # 194,000 characters
    fitted = fit_passage(build, passage, count, 2000)
    assert fitted.tokens <= 2000 and fitted.tokens >= 0.9 * 2000
    assert fitted.passage_chars + fitted.passage_chars_dropped == len(passage)
    assert passage.startswith(fitted.messages[0]["content"][len("Source text: ") :].split("\n\n[")[0])
    assert PASSAGE_TRUNCATED in fitted.messages[0]["content"]
    whole = fit_passage(build, "short", count, 2000)
    assert whole.passage_chars_dropped == 0 and PASSAGE_TRUNCATED not in whole.messages[0]["content"]
    with pytest.raises(PromptDoesNotFit, match="without its passage"):
        fit_passage(build, passage, count, 10)


def test_a_stopped_speech_ends_at_its_last_sentence_within_the_limit_or_with_the_cut_marker():
    text = "The sky is blue. It is often said that the sky is green but this is wrong and we"
    assert end_at_limit(text, 30, cut=True) == ("The sky is blue.", "sentence")
    cut, how = end_at_limit(text, 60, cut=True)  # the sentence end would keep less than half
    assert how == "marker" and cut.endswith(CUT_MARKER) and len(cut) <= 60 and text.startswith(cut[: -len(CUT_MARKER)])
    assert end_at_limit("Short and stopped", 60, cut=True) == ("Short and stopped" + CUT_MARKER, "marker")
    assert end_at_limit("Ended. Whole.", 60, cut=False) == ("Ended. Whole.", "whole")
    assert end_at_limit('He said "yes." Then more words go on and on', 20, cut=True) == ('He said "yes."', "sentence")


def test_a_models_context_window_is_the_smaller_real_one_of_its_config_and_tokenizer(tmp_path):
    assert declared_context_window({"max_position_embeddings": 8192}, 1e30) == 8192  # the sentinel is not real
    assert declared_context_window({"max_position_embeddings": 8192}, 4096) == 4096
    assert declared_context_window({"n_positions": 1024}) == 1024
    assert declared_context_window({"text_config": {"max_position_embeddings": 2048}}) == 2048
    assert declared_context_window({}) is None
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 4096}))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 2048}))
    assert context_window_from_files(str(tmp_path), tmp_path / "cache") == 2048
    assert context_window_from_files("smollm2-135m-instruct", tmp_path / "empty-cache") == 8192
    assert context_window_from_files("nobody/not-a-cached-model", tmp_path) is None


def test_tokens_past_the_limit_are_counted_from_the_token_whose_text_reached_it():
    def decode(ids):
        return "".join("abcde"[i] * 3 for i in ids)

    assert tokens_to_reach([0, 1, 2, 3], decode, 7) == 3  # 9 characters after three tokens
    assert tokens_past_limit([0, 1, 2, 3], decode, 7) == 1
    assert tokens_past_limit([0, 1], decode, 7) == 0 and tokens_past_limit([0], decode, None) is None


# ------------------------------------------------------------------------------- the batcher, on steps --
def _batcher(tiny_model_dir, prefill_tokens, max_rows=4, **options):
    backend = get_backend("transformers", str(tiny_model_dir))
    backend._load()
    tokenizer, model = backend._tokenizer, backend._model
    return tokenizer, cpu_batcher(
        model, tokenizer, max_rows=max_rows, prefill_tokens=prefill_tokens, **({"prefill_share": None} | options)
    )


def ask(text, **options):
    settings = {"max_new_tokens": 12, "temperature": 0.0, "top_p": 1.0} | options
    return GenerationRequest(messages=[{"role": "user", "content": text}], **settings)


def test_a_long_prompt_is_prefilled_in_chunks_between_the_running_rows_decoding_steps(tiny_model_dir):
    tokenizer, whole = _batcher(tiny_model_dir, prefill_tokens=10_000)
    long_ids = tokenizer(PARAGRAPH * 12)["input_ids"]
    assert len(long_ids) > 200
    whole.submit("long", ask("long"), long_ids)
    expected = {}
    while not whole.idle:
        expected.update(whole.step())

    _, chunked = _batcher(tiny_model_dir, prefill_tokens=128, chunk_tokens=64)  # longer than 128: chunks of 64
    chunked.submit("running", ask("running", max_new_tokens=40, min_new_tokens=40), tokenizer("hi")["input_ids"])
    chunked.step()  # the running row joins
    chunked.submit("long", ask("long"), long_ids)
    kinds, results, short_first_token_at = [], {}, None
    step = 0
    while not chunked.idle:
        prefills = chunked.prefill_steps
        running_tokens = len(chunked.rows[0].tokens)
        results.update(chunked.step())
        step += 1
        kinds.append("prefill" if chunked.prefill_steps > prefills else "decode")
        if step == 3:  # a short request arrives while the long prompt is being prefilled
            chunked.submit("short", ask("short"), tokenizer("short question")["input_ids"])
        if kinds[-1] == "prefill" and "running" not in results:
            assert len(chunked.rows[0].tokens) == running_tokens  # a prefill step decodes nothing
        short = next((r for r in chunked.rows if r.key == "short"), None)
        if short_first_token_at is None and (short is not None or "short" in results):
            short_first_token_at = step
    chunks = -(-len(long_ids) // 64)
    prefill_steps = [i for i, kind in enumerate(kinds) if kind == "prefill"]
    assert len(prefill_steps) == chunks + 1  # the long prompt's chunks and the short request's prefill
    # While rows run, prefills never follow each other: each is followed by a decoding step.
    assert all(kinds[i + 1] == "decode" for i in prefill_steps if i + 1 < len(kinds) and "running" not in results)
    # The short request was prefilled after at most one more chunk of the long prompt, long before its end.
    assert short_first_token_at <= 3 + 4 and short_first_token_at < prefill_steps[-1]
    assert results["long"].text == expected["long"].text  # chunks change nothing in what is written
    assert results["long"].tokens_in == len(long_ids)


def test_chunks_take_at_most_their_share_of_the_time_and_a_short_prompt_goes_before_them(tiny_model_dir):
    """The clock is the model's work: a forward pass costs one unit per input token (no wall clock)."""
    now = [0.0]
    tokenizer, batcher = _batcher(tiny_model_dir, prefill_tokens=64, prefill_share=0.5, clock=lambda: now[0])
    hook = batcher.model.register_forward_pre_hook(
        lambda module, args, kwargs: now.__setitem__(0, now[0] + kwargs["input_ids"].numel()), with_kwargs=True
    )
    try:
        batcher.submit("running", ask("r", max_new_tokens=400, min_new_tokens=400), tokenizer("hi")["input_ids"])
        batcher.step()
        long_ids = tokenizer(PARAGRAPH * 12)["input_ids"]
        batcher.submit("long", ask("long"), long_ids)
        kinds, spent = [], {"chunk": 0.0, "decode": 0.0}
        while "long" not in [row.key for row in batcher.rows]:
            prefills, before = batcher.prefill_steps, now[0]
            short_waiting = any(row.key == "short" for row in batcher.waiting)
            batcher.step()
            kind = "decode" if batcher.prefill_steps == prefills else ("short" if short_waiting else "chunk")
            if kind == "chunk":  # a chunk runs only while chunks have had at most half of the time
                assert spent["chunk"] <= spent["decode"]
            if kind != "short":
                spent[kind] += now[0] - before
            kinds.append(kind)
            if len(kinds) == 70:  # a short request arrives between two chunks
                batcher.submit("short", ask("short"), tokenizer("short question")["input_ids"])
        assert kinds.count("chunk") == -(-len(long_ids) // 64) and kinds.count("short") == 1
        assert kinds.index("short") == 70  # at once, before the long prompt's remaining chunks
        assert kinds[:3] == ["decode", "chunk", "decode"] and spent["decode"] >= spent["chunk"] - 64
    finally:
        hook.remove()


def test_with_nothing_running_a_short_prompt_still_goes_before_a_long_ones_remaining_chunks(tiny_model_dir):
    tokenizer, batcher = _batcher(tiny_model_dir, prefill_tokens=128, chunk_tokens=64, prefill_share=0.5)
    batcher.submit("long", ask("long"), tokenizer(PARAGRAPH * 12)["input_ids"])
    batcher.step()  # the long prompt's first chunk
    batcher.submit("short", ask("short"), tokenizer("short question")["input_ids"])
    batcher.step()
    assert [row.key for row in batcher.rows] == ["short"] and batcher.waiting[0].prefilled == 64


def test_while_live_turns_are_expected_a_pre_generated_prompt_is_chunked_finer(tiny_model_dir):
    """A judge's question waits for the chunk being run: after a live request, lower-priority prompts are
    chunked in ``live_chunk_tokens``, until LIVE_EXPECTED_SECONDS pass without one (the clock is given)."""
    now = [0.0]
    tokenizer, batcher = _batcher(
        tiny_model_dir, prefill_tokens=64, chunk_tokens=64, live_chunk_tokens=16, clock=lambda: now[0]
    )
    long_ids = tokenizer(PARAGRAPH * 12)["input_ids"]
    batcher.submit("first", ask("first"), long_ids)
    batcher.step()
    assert batcher.waiting[0].prefilled == 64  # no live request seen yet: the usual chunk
    batcher.submit("live", ask("live", priority=1), tokenizer("why?")["input_ids"])
    batcher.step()  # the live request goes first
    assert [row.key for row in batcher.rows] == ["live"]
    batcher.step()  # the live row decodes
    batcher.step()  # the long prompt's next chunk, finer now
    assert batcher.waiting[0].prefilled == 64 + 16
    now[0] += continuous.LIVE_EXPECTED_SECONDS  # no live request for that long: the usual chunks again
    batcher.step()
    batcher.step()
    assert batcher.waiting[0].prefilled == 64 + 16 + 64


# --------------------------------------------------------------------------- stopping at the limit --
@pytest.mark.parametrize("path", ["continuous", "padded"])
def test_generation_stops_when_the_text_reaches_the_character_limit(tiny_model_dir, path):
    backend = get_backend("transformers", str(tiny_model_dir))
    backend.continuous = path == "continuous"
    try:
        requests = [ask("hello there", max_new_tokens=400, char_limit=60), ask("hello there", max_new_tokens=8)]
        results = {}
        backend.generate_continuously(
            lambda free, pausable=0, pending=list(enumerate(requests)): [pending.pop(0) for _ in range(len(pending))],
            results.__setitem__,
        )
    finally:
        backend.continuous = True
    limited, free = results[0], results[1]
    assert limited.stop_reason == "char_limit" and limited.tokens_past_limit == 0
    assert len(limited.text) >= 60 and limited.tokens_out < 400
    assert free.stop_reason in ("max_tokens", "end") and free.tokens_past_limit is None


def _long_passage_set(chars: int):
    passage = (PARAGRAPH * (chars // len(PARAGRAPH) + 1))[:chars]
    return import_questions(
        set_name=f"long passages {chars}",
        questions=[
            {
                "external_id": "long",
                "text": "Did the mill stop?",
                "choices": ["Yes", "No"],
                "correct_index": 0,
                "passage": passage,
                "metadata": {},
            }
        ],
    )


@pytest.mark.parametrize("path", ["continuous", "padded"])
def test_a_long_passage_is_truncated_to_fit_and_the_truncation_and_the_stop_are_recorded(
    make_model_config, make_experiment, tiny_model_dir, path
):
    config = make_model_config(tiny_model_dir, context_window=700, max_new_tokens=200)
    experiment = make_experiment(
        config, question_set=_long_passage_set(40_000), num_questions=1, rounds=1, char_limit=90
    )
    experiment_launch(experiment=experiment)
    backend = get_backend("transformers", str(tiny_model_dir), context_window=700)
    backend.continuous = path == "continuous"
    try:
        assert generate_batch(experiment.pk) == 2
    finally:
        backend.continuous = True
    passage = experiment.trials.get().question.passage
    for turn in Turn.objects.filter(trial__experiment=experiment):
        settings = turn.model_settings
        assert turn.status == "done" and turn.passage_chars_dropped > 30_000
        assert PASSAGE_TRUNCATED in turn.prompt
        shown = turn.prompt.split("Source text: ")[1].split("\n\n" + PASSAGE_TRUNCATED)[0]
        assert passage.startswith(shown) and len(shown) == len(passage) - turn.passage_chars_dropped
        assert settings["context_window"] == 700 and settings["prompt_budget"] == 700 - 30  # 90 chars // 3
        assert turn.tokens_in <= settings["prompt_budget"] and turn.tokens_in == settings["prompt_tokens_counted"]
        # The speech stopped at its 90 characters, nothing generated past them, and it says how it ends.
        assert settings["stop_reason"] in ("char_limit", "end") and turn.tokens_past_limit == 0
        assert len(turn.text) <= 90 and turn.speech_end in ("whole", "sentence", "marker")
        if settings["stop_reason"] == "char_limit":
            assert turn.speech_end in ("sentence", "marker")
            assert turn.speech_end == "sentence" or turn.text.endswith(CUT_MARKER)
    rows = list(turn_rows([experiment.pk]))
    assert {r["passage_chars_dropped"] for r in rows} == {len(passage) - len(shown)}
    assert {r["tokens_past_limit"] for r in rows} == {0} and all(r["speech_end"] for r in rows)


def test_a_turn_that_cannot_fit_even_without_its_passage_fails_at_once_saying_why(
    make_model_config, make_experiment, tiny_model_dir
):
    config = make_model_config(tiny_model_dir, context_window=120, name="small window")
    experiment = make_experiment(config, question_set=_long_passage_set(5_000), num_questions=1, rounds=1)
    experiment_launch(experiment=experiment)
    assert generate_batch(experiment.pk) == 0
    turns = list(Turn.objects.filter(trial__experiment=experiment))
    assert {t.status for t in turns} == {"failed"} and {t.attempts for t in turns} == {1}
    for turn in turns:
        assert turn.error.startswith("prompt too long for small window: the prompt needs")
        assert "120 tokens" in turn.error and "without its passage" in turn.error
    assert experiment.trials.get().status == "failed"


def test_the_admin_turn_page_shows_the_truncation_and_the_stop(admin_client, ready_trial):
    turn = ready_trial.turns.exclude(speaker="judge").first()
    Turn.objects.filter(pk=turn.pk).update(passage_chars_dropped=1234, tokens_past_limit=0, speech_end="marker")
    page = admin_client.get(f"/admin/judging/turn/{turn.pk}/change/").content.decode()
    assert "1234" in page and "marker" in page and "Passage chars dropped" in page
    listing = admin_client.get("/admin/judging/turn/").content.decode()
    assert "passage cut" in listing.lower()


# ---------------------------------------------------------------------- warnings for the researcher --
def _jsonl(passage_chars: int) -> bytes:
    line = {"id": "long", "question": "Did the mill stop?", "choices": ["Yes", "No"], "correct_index": 0}
    return (json.dumps(line | {"passage": "x " * (passage_chars // 2)}) + "\n").encode()


def test_the_admin_import_warns_about_passages_too_long_for_a_configured_model(admin_client, make_model_config):
    from django.core.files.uploadedfile import SimpleUploadedFile

    make_model_config("smollm2-135m-instruct", name="SmolLM2", max_new_tokens=192)  # 8,192 tokens (bundled)
    make_model_config("srv", name="server, window unknown", backend="openai", api_base="http://x/v1")
    upload = SimpleUploadedFile("long.jsonl", _jsonl(174_000))
    response = admin_client.post(
        "/admin/judging/questionset/import/", {"set_name": "long", "file": upload}, follow=True
    )
    page = response.content.decode()
    assert "1 of 1 passages are longer than SmolLM2&#x27;s context window allows (8,192 tokens" in page
    assert "about 32,000 characters fit" in page and "174,000 characters" in page
    assert "server, window unknown" not in page  # a server's window is not known to the web process


def test_the_import_command_warns_for_the_model_named(make_model_config, tmp_path, capsys):
    from django.core.management import call_command

    make_model_config("smollm2-135m-instruct", name="SmolLM2")
    make_model_config("m", name="big window", context_window=1_000_000)
    path = tmp_path / "long.jsonl"
    path.write_bytes(_jsonl(40_000))
    call_command("import_questions", "long", str(path), "--model", "big window")
    assert "warning" not in capsys.readouterr().err
    call_command("import_questions", "long two", str(path))
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "SmolLM2's context window" in err


def test_the_experiment_form_warns_when_the_chosen_models_cannot_read_the_passages(admin_client, make_model_config):
    from tests.judging.admin_form import experiment_form

    question_set = _long_passage_set(60_000)
    small = make_model_config("m", name="small", context_window=2048)
    response = admin_client.post(
        "/admin/judging/experiment/add/", experiment_form(question_set, small, num_questions=1), follow=True
    )
    page = response.content.decode()
    assert response.status_code == 200 and "1 of 1 passages are longer than small&#x27;s context window" in page


def test_the_model_alone_reads_a_long_passage_truncated_to_fit(make_model_config, make_experiment, tiny_model_dir):
    from generation.baselines import score_model_alone
    from judging.models import ModelAnswer

    config = make_model_config(tiny_model_dir, context_window=600, name="alone")
    experiment = make_experiment(
        config, question_set=_long_passage_set(30_000), num_questions=1, conditions=["naive"], mode="live"
    )
    experiment_launch(experiment=experiment)
    assert score_model_alone(experiment.pk) == 1
    answer = ModelAnswer.objects.get(experiment=experiment)
    assert answer.model_settings["passage_chars_dropped"] > 25_000 and 0 < answer.probability_a < 1
