"""The debate state machine: legal sequences, and illegal moves refused without change."""

import pytest

from judging.protocols import debate
from judging.protocols.debate import DebateRules, DebateState, IllegalMove, Speech, replay


def simultaneous(rounds=2, **kw):
    return DebateState(rules=DebateRules(rounds=rounds, turn_style=debate.SIMULTANEOUS, **kw))


def sequential(rounds=2, first="A", **kw):
    return DebateState(rules=DebateRules(rounds=rounds, turn_style=debate.SEQUENTIAL, first_speaker=first, **kw))


def test_it_lets_both_debaters_speak_in_a_simultaneous_round():
    state = simultaneous()
    assert state.next_speakers() == ("A", "B")
    state = state.apply_speech("B", "b1")
    assert state.next_speakers() == ("A",)
    state = state.apply_speech("A", "a1")
    assert state.completed_rounds == 1 and state.current_round == 2
    assert state.next_speakers() == ("A", "B")


def test_it_hides_the_opponents_same_round_speech_in_simultaneous_rounds():
    state = simultaneous().apply_speech("B", "b1 secret")
    assert [s.text for s in state.visible_to("A")] == []
    state = state.apply_speech("A", "a1")
    assert {s.text for s in state.visible_to("A")} == {"a1", "b1 secret"}
    state = state.apply_speech("A", "a2")
    assert "a2" not in {s.text for s in state.visible_to("B")}


def test_it_orders_sequential_rounds_by_first_speaker():
    state = sequential(first="B")
    assert state.next_speakers() == ("B",)
    with pytest.raises(IllegalMove, match="cannot speak now"):
        state.apply_speech("A", "out of turn")
    state = state.apply_speech("B", "b1")
    assert state.next_speakers() == ("A",)
    assert [s.text for s in state.visible_to("A")] == ["b1"]


def test_it_refuses_a_debater_speaking_twice_in_a_round():
    state = simultaneous().apply_speech("A", "a1")
    with pytest.raises(IllegalMove, match="cannot speak now"):
        state.apply_speech("A", "again")
    assert len(state.transcript) == 1


def test_it_awaits_a_verdict_after_the_last_round_and_refuses_more_speech():
    state = simultaneous(rounds=1).apply_speech("A", "a").apply_speech("B", "b")
    assert state.phase == debate.AWAITING_VERDICT
    assert state.next_speakers() == ()
    with pytest.raises(IllegalMove, match="awaiting verdict"):
        state.apply_speech("A", "more")


def test_it_accepts_one_verdict_and_closes():
    state = simultaneous(rounds=1).apply_speech("A", "a").apply_speech("B", "b")
    closed = state.apply_verdict("B", 0.8)
    assert closed.phase == debate.CLOSED and closed.verdict == debate.Verdict("B", 0.8)
    with pytest.raises(IllegalMove, match="already"):
        closed.apply_verdict("A", 0.9)
    assert state.verdict is None  # the earlier state is untouched


def test_it_refuses_a_verdict_before_the_debate_is_finished():
    state = simultaneous(rounds=2).apply_speech("A", "a").apply_speech("B", "b")
    with pytest.raises(IllegalMove, match="not finished"):
        state.apply_verdict("A", 0.7)


@pytest.mark.parametrize("chosen,p", [("C", 0.7), ("A", 1.2), ("A", -0.1)])
def test_it_refuses_malformed_verdicts(chosen, p):
    state = simultaneous(rounds=1).apply_speech("A", "a").apply_speech("B", "b")
    with pytest.raises(IllegalMove):
        state.apply_verdict(chosen, p)


def test_it_allows_judge_questions_only_between_rounds():
    state = simultaneous(rounds=3)
    with pytest.raises(IllegalMove, match="between rounds"):
        state.apply_judge_question("before anyone spoke?")
    state = state.apply_speech("A", "a1")
    with pytest.raises(IllegalMove, match="between rounds"):
        state.apply_judge_question("mid-round?")
    state = state.apply_speech("B", "b1").apply_judge_question("Why?", ("A",))
    assert state.transcript[-1] == Speech("judge", 1, "Why?", ("A",))
    # The question is visible to the debaters writing round 2.
    assert "Why?" in [s.text for s in state.visible_to("A")]
    assert state.next_speakers() == ("A", "B")


def test_it_refuses_empty_or_misaddressed_questions_and_questions_after_the_verdict():
    state = simultaneous(rounds=1).apply_speech("A", "a").apply_speech("B", "b")
    with pytest.raises(IllegalMove, match="cannot ask"):
        state.apply_judge_question("late?")
    mid = simultaneous(rounds=2).apply_speech("A", "a").apply_speech("B", "b")
    with pytest.raises(IllegalMove, match="empty"):
        mid.apply_judge_question("   ")
    with pytest.raises(IllegalMove, match="addressed"):
        mid.apply_judge_question("to whom?", ("C",))
    closed = state.apply_verdict("A", 0.6)
    with pytest.raises(IllegalMove):
        closed.apply_judge_question("after verdict?")


def test_it_lets_the_judge_end_only_after_the_minimum_rounds():
    state = simultaneous(rounds=3, min_rounds=2).apply_speech("A", "a").apply_speech("B", "b")
    with pytest.raises(IllegalMove, match="after round 2"):
        state.apply_end()
    state = state.apply_speech("A", "a2").apply_speech("B", "b2")
    ended = state.apply_end()
    assert ended.phase == debate.AWAITING_VERDICT
    with pytest.raises(IllegalMove):
        ended.apply_end()


def test_replay_rebuilds_a_state_and_rejects_an_impossible_transcript():
    speeches = [Speech("A", 1, "a"), Speech("B", 1, "b"), Speech("judge", 1, "q?", ("A", "B")), Speech("B", 2, "b2")]
    state = replay(DebateRules(rounds=2), speeches)
    assert state.next_speakers() == ("A",)
    with pytest.raises(IllegalMove):
        replay(DebateRules(rounds=2), [Speech("A", 1, "a"), Speech("A", 1, "again")])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rounds": -1},
        {"rounds": 2, "turn_style": "chaotic"},
        {"rounds": 2, "first_speaker": "C"},
        {"rounds": 2, "min_rounds": 3},
    ],
)
def test_it_rejects_invalid_rules(kwargs):
    with pytest.raises(ValueError):
        DebateRules(**kwargs)


def test_the_protocol_module_imports_neither_django_nor_torch():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(debate))
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not imported & {"django", "torch", "transformers", "celery"}


def after_rounds(state, n):
    for _ in range(n):
        for speaker in state.next_speakers():
            state = state.apply_speech(speaker, "x")
    return state


def test_a_flipped_leaning_requires_one_more_round_before_ending():
    rules = DebateRules(rounds=4, min_rounds=1, extra_round_after_flip=True)
    state = after_rounds(DebateState(rules=rules), 1).apply_leaning(0.8)  # leaning A
    assert state.can_end()
    state = after_rounds(state, 1).apply_leaning(0.3)  # flipped to B
    assert state.flip_pending() and not state.can_end()
    with pytest.raises(IllegalMove, match="one more round"):
        state.apply_end()
    state = after_rounds(state, 1)
    assert state.can_end()
    assert state.apply_end().phase == debate.AWAITING_VERDICT


def test_without_the_flip_rule_a_flipped_leaning_does_not_block_ending():
    rules = DebateRules(rounds=3, min_rounds=1)
    state = after_rounds(DebateState(rules=rules), 1).apply_leaning(0.8)
    state = after_rounds(state, 1).apply_leaning(0.2)
    assert state.can_end()


def test_a_leaning_is_only_recorded_between_rounds_and_in_range():
    state = DebateState(rules=DebateRules(rounds=2, min_rounds=1))
    with pytest.raises(IllegalMove, match="between rounds"):
        state.apply_leaning(0.6)
    state = after_rounds(state, 1)
    with pytest.raises(IllegalMove, match="between 0 and 1"):
        state.apply_leaning(1.5)
    assert state.apply_leaning(0.6).apply_leaning(0.4).leanings == ((1, 0.4),)  # replaced, not added


def test_the_judge_cannot_end_mid_round():
    state = after_rounds(DebateState(rules=DebateRules(rounds=3, min_rounds=1)), 1).apply_speech("A", "a2")
    with pytest.raises(IllegalMove, match="after round 1"):
        state.apply_end()


def test_replay_restores_leanings_and_an_ended_debate():
    rules = DebateRules(rounds=3, min_rounds=1, extra_round_after_flip=True)
    speeches = [Speech("A", 1, "a"), Speech("B", 1, "b"), Speech("A", 2, "a"), Speech("B", 2, "b")]
    state = replay(rules, speeches, leanings=((1, 0.9), (2, 0.1)))
    assert state.flip_pending()
    with pytest.raises(IllegalMove):
        replay(rules, speeches, leanings=((1, 0.9), (2, 0.1)), ended_by_judge=True)
    assert replay(rules, speeches, leanings=((1, 0.9), (2, 0.8)), ended_by_judge=True).phase == debate.AWAITING_VERDICT


def test_an_undecided_leaning_does_not_hide_a_flip():
    rules = DebateRules(rounds=4, min_rounds=1, extra_round_after_flip=True)
    state = after_rounds(DebateState(rules=rules), 1).apply_leaning(0.7)
    state = after_rounds(state, 1).apply_leaning(0.5)
    assert state.can_end()  # undecided is not a flip
    state = after_rounds(state, 1).apply_leaning(0.3)
    assert state.flip_pending() and not state.can_end()
