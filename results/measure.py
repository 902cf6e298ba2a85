"""Throughput inputs measured from what judges and workers actually did."""

from __future__ import annotations

import functools
from collections import defaultdict

from django.conf import settings

from inference.transformers_backend import resolve_model_path
from judging.models import Trial, Turn, Verdict
from judging.protocols.debate import JUDGE

from .throughput import VERDICT_INPUTS, Quantity, measured_from_verdicts


def _words(text: str) -> int:
    return len(text.split())


def verdict_records(experiment_ids: list[int], role: str = Trial.Role.STUDY) -> list[dict]:
    """Per verdict: judge, question, words and characters read (question, both answers, finished
    speeches), seconds (active; on the page where active time was not measured), seconds on the page
    (from first opening the trial), the answer chosen and whether it was correct.

    Words read leave out the judge's own questions: the judge wrote them, not read them. 0 active
    seconds are 0 (the page beat but the judge was never active), not missing.

    Two flat queries (verdicts with their trial's question, and finished turns' text), not model
    instances: the analysis page reads 10,000 verdicts this way in a fraction of a second. Study trials only
    unless ``role`` says otherwise (the quality panel reads attention checks apart: docs/onboarding.md)."""
    turn_words: dict[int, int] = defaultdict(int)
    turn_characters: dict[int, int] = defaultdict(int)
    finished = Turn.objects.filter(
        trial__experiment_id__in=experiment_ids, trial__role=role, status=Turn.Status.DONE
    ).exclude(speaker=JUDGE)
    for trial_id, text in finished.values_list("trial_id", "text").iterator(chunk_size=5000):
        turn_words[trial_id] += _words(text)
        turn_characters[trial_id] += len(text)
    rows = Verdict.objects.filter(trial__experiment_id__in=experiment_ids, trial__role=role).values_list(
        "trial_id",
        "judge__username",
        "trial__question__external_id",
        "trial__question__text",
        "trial__question__choices",
        "trial__answer_a_index",
        "trial__answer_b_index",
        "trial__honest_side",
        "chosen",
        "active_seconds",
        "seconds_on_page",
    )
    records = []
    for trial_id, judge, question, text, choices, a, b, honest, chosen, active, on_page in rows.iterator(
        chunk_size=5000
    ):
        records.append(
            {
                "judge": judge,
                "question_id": question,
                "words": _words(text) + _words(choices[a]) + _words(choices[b]) + turn_words[trial_id],
                "characters": len(text) + len(choices[a]) + len(choices[b]) + turn_characters[trial_id],
                "seconds": active if active is not None else on_page,
                "seconds_on_page": on_page,
                "chosen": chosen,
                "correct": chosen == honest,
            }
        )
    return records


@functools.lru_cache(maxsize=8)
def _tokenizer(backend: str, model_name: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_path(model_name, settings.MODEL_CACHE_DIR))


def _tokenizer_or_none(backend: str, model_name: str):
    try:
        return _tokenizer(backend, model_name)
    except Exception:  # a model no longer reachable: its turns give no tokens-per-word figure
        return None


def turn_measurements(experiment_ids: list[int], *, tokens_per_word: bool = True) -> dict[str, tuple[list, list, list]]:
    """Per input, the (numerators, denominators, trials) of the generated turns: tokens (the debater's own
    tokenizer) over words, and tokens times the requests generated beside them over wall seconds. Each
    input is then a ratio of sums over the turns, resampled by trial (``Quantity.measured``)."""
    # The study's turns, as everything measured from experiments (practice and attention checks are not analysed).
    turns = Turn.objects.filter(
        trial__experiment_id__in=experiment_ids, trial__role=Trial.Role.STUDY, status=Turn.Status.DONE
    ).select_related("model_config")
    out = {"tokens_per_word": ([], [], []), "model_tokens_per_second": ([], [], [])}
    for turn in turns:
        words = _words(turn.text)
        if tokens_per_word and words and turn.model_config is not None and turn.model_config.backend == "transformers":
            tokenizer = _tokenizer_or_none(turn.model_config.backend, turn.model_config.model_name)
            if tokenizer is not None:
                tokens = len(tokenizer(turn.text, add_special_tokens=False)["input_ids"])
                for column, value in zip(out["tokens_per_word"], (tokens, words, turn.trial_id)):
                    column.append(value)
        if turn.tokens_out and turn.wall_seconds:
            # The turn's own tokens times the requests generated beside it (on average over its steps, where
            # continuous batching recorded that; else the batch it ran in) estimate the worker's over that time.
            batch = turn.model_settings.get("mean_batch_size") or turn.model_settings.get("batch_size") or 1
            for column, value in zip(
                out["model_tokens_per_second"], (turn.tokens_out * batch, turn.wall_seconds, turn.trial_id)
            ):
                column.append(value)
    return out


TURN_MEASURES = {"tokens_per_word", "model_tokens_per_second"}


def measured_quantities(experiment_ids: list[int], names) -> dict[str, Quantity]:
    """The requested inputs that these experiments measured; names with no data are left out.

    Inputs from verdicts are ratios of sums resampled jointly by question, judge and cell
    (``measured_from_verdicts``); inputs from generated turns are ratios of sums resampled by trial.
    """
    names = set(names)
    source = "measured from experiment(s) " + ", ".join(map(str, experiment_ids))
    out = {}
    if names & set(VERDICT_INPUTS):
        out |= measured_from_verdicts(verdict_records(experiment_ids), names, source=source)
    if names & TURN_MEASURES:
        samples = turn_measurements(experiment_ids, tokens_per_word="tokens_per_word" in names)
        out |= {
            name: Quantity.measured(*samples[name], source=source) for name in names & TURN_MEASURES if samples[name][0]
        }
    return out
