"""Best-of-N: sample N candidates of a debater's turn and keep the one a scoring model finds most convincing."""

from __future__ import annotations

from inference import GenerationResult
from judging.models import Turn
from judging.protocols import debate
from judging.protocols.prompts import build_model_judge_messages, end_at_limit
from judging.services import debate_state

from .backends import backend_for


def candidates_per_turn(config, turn: Turn) -> int:
    """N for best-of-N: debaters and consultants only (an assistant has no side to be judged on)."""
    if config.best_of_n > 1 and turn.trial.protocol_spec.best_of_n:
        return config.best_of_n
    return 1


def scorer_view(turn: Turn) -> list[dict]:
    """What the scoring model reads before a candidate: what this speaker could see (in a
    simultaneous round, not the opponent's same-round speech), labelled as a judge sees it."""
    trial = turn.trial
    return [
        {
            "label": "Judge's question" if s.speaker == debate.JUDGE else trial.protocol_spec.speaker_label(s.speaker),
            "text": s.text,
        }
        for s in debate_state(trial).visible_to(turn.speaker)
    ]


def candidate_score(scorer, turn: Turn, text: str, view: list[dict] | None = None) -> float:
    """The scoring model's probability for this speaker's answer after reading ``view``
    (default: ``scorer_view(turn)``) followed by the candidate."""
    trial = turn.trial
    speeches = (view if view is not None else scorer_view(turn)) + [
        {"label": trial.protocol_spec.speaker_label(turn.speaker), "text": text}
    ]
    messages = build_model_judge_messages(
        question=trial.question.text,
        answer_a=trial.answer_text("A"),
        answer_b=trial.answer_text("B"),
        speeches=speeches,
    )
    p_a, p_b = scorer.choice_probabilities(messages, ["A", "B"])
    return p_a if turn.speaker == "A" else p_b


def pick_best(config, turn: Turn, samples: list[GenerationResult]) -> tuple[GenerationResult, list[dict]]:
    """The candidate the scoring model rates most convincing, and a record of them all."""
    scorer = backend_for(config.best_of_n_judge or config)
    texts = [
        end_at_limit(s.text, turn.trial.speech_char_limit, cut=s.stop_reason in ("char_limit", "max_tokens"))[0]
        for s in samples
    ]
    view = scorer_view(turn)  # the same for every candidate of this turn
    scores = [candidate_score(scorer, turn, text, view) for text in texts]
    best = max(range(len(samples)), key=scores.__getitem__)
    return samples[best], [
        {"text": text, "score": round(score, 6), "kept": j == best, "tokens_out": s.tokens_out}
        for j, (text, score, s) in enumerate(zip(texts, scores, samples))
    ]
