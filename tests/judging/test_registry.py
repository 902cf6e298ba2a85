"""The protocol registry is the one definition of protocols, arms and conditions."""

import hashlib
import json

import pytest

from judging.assignment import QuestionInfo, plan_trials
from judging.models import Arm, Condition, Experiment, Protocol, Trial
from judging.protocols import registry
from judging.protocols.debate import SEQUENTIAL, SIMULTANEOUS


def test_the_database_choices_are_the_registry():
    assert Arm.values == list(registry.ARMS)
    assert Condition.values == list(registry.CONDITIONS)
    assert Protocol.values == list(registry.PROTOCOLS)
    assert Experiment.Arm is Arm and Trial.Protocol is Protocol and Trial.Condition is Condition


def test_every_arm_runs_a_declared_protocol_and_one_or_two_conditions():
    for arm in registry.ARMS.values():
        assert arm.protocol in registry.PROTOCOLS
        assert len(arm.conditions) in (1, 2)
        if len(arm.conditions) == 2:  # honest in half of the trials: the speaker's honesty is drawn
            assert arm.speaker_honest is None


def test_a_seeded_plan_is_pinned():
    # Which trial a seed gives, pinned: a change here changes every new experiment's plan, so it must be
    # deliberate (and the platform version in settings bumped; provenance records it). Release 0.1's
    # planner gave cf8b92df...; platform 0.2's (issue 11: arms balanced per question as well as per
    # judge, consultancy honesty blocked jointly with the honest side) gives this.
    questions = [QuestionInfo(id=i, n_choices=2 + i % 3, correct_index=i % 2) for i in range(40)]
    plans = plan_trials(
        questions, [3, 5, 8, 13], num_questions=30, judgments_per_question=2, seed=99, arms=list(registry.ARMS)
    )
    rows = [
        (
            p.question_id,
            p.judge_id,
            p.honest_side,
            p.answer_a_index,
            p.answer_b_index,
            p.first_speaker,
            p.queue_position,
            p.speaker_side,
            p.protocol,
            p.condition,
        )
        for p in plans
    ]
    digest = hashlib.sha256(json.dumps(rows).encode()).hexdigest()
    assert digest == "cdad623e67fb4385bde8d75903231adc251a7f3b5372c69a3f34645f5fc81f9e"


def setup(**overrides):
    values = {
        "rounds": 3,
        "turn_style": SIMULTANEOUS,
        "first_speaker": "B",
        "speaker_side": "A",
        "condition": "debate",
        "live": True,
        "min_rounds": 2,
        "extra_round_after_flip": True,
    }
    return registry.TrialSetup(**(values | overrides))


def test_rules_come_from_each_protocol_declaration():
    debate = registry.PROTOCOLS["debate"].rules(setup())
    assert debate.speakers == ("A", "B") and debate.min_rounds == 2 and debate.extra_round_after_flip
    pregenerated = registry.PROTOCOLS["debate"].rules(setup(live=False))
    assert pregenerated.min_rounds is None and not pregenerated.extra_round_after_flip
    consultant = registry.PROTOCOLS["consultancy"].rules(setup(condition="honest consultant"))
    assert consultant.speakers == ("A",) and consultant.turn_style == SEQUENTIAL
    naive = registry.PROTOCOLS["sandwich"].rules(setup(condition="naive", speaker_side=""))
    assert naive.rounds == 0
    assistant = registry.PROTOCOLS["sandwich"].rules(setup(condition="assisted-misleading", speaker_side="B"))
    assert assistant.speakers == ("B",) and assistant.rounds == 3


@pytest.mark.parametrize(
    "protocol, label, asked",
    [
        ("debate", "Debater B", "Debater A and Debater B"),
        ("consultancy", "Consultant (for answer B)", "the consultant"),
        ("sandwich", "Assistant", "the assistant"),  # never the side: it would reveal the condition
    ],
)
def test_what_the_judge_reads_comes_from_the_declaration(protocol, label, asked):
    spec = registry.PROTOCOLS[protocol]
    assert spec.speaker_label("B") == label
    assert spec.addressee(("A", "B")) == asked
    assert spec.page_template == f"judging/protocols/{protocol}.html"


def test_only_two_speaker_protocols_can_be_simultaneous():
    assert registry.simultaneous("debate", SIMULTANEOUS)
    assert not registry.simultaneous("debate", SEQUENTIAL)
    assert not registry.simultaneous("consultancy", SIMULTANEOUS)
    assert not registry.simultaneous("sandwich", SIMULTANEOUS)
