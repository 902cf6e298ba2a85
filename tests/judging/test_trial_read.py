"""judging.trial_read reads a judge's trial as the ORM does (every field, converted as the ORM converts it, on both
databases), wired as select_related and prefetch_related wire it, and refuses what the judge may not read."""

import pytest
from django.db.models import F, Prefetch
from django.utils import timezone

from judging import trial_read
from judging.models import Trial, Turn
from judging.services import experiment_launch, live_move, trial_open
from tests.judging.test_trial_partials import finish_round, first_trial

pytestmark = pytest.mark.django_db


def orm_read(trial_id):
    """The read trial_read replaces, through the ORM."""
    return (
        Trial.objects.select_related("question", "experiment")
        .defer("experiment__provenance")
        .prefetch_related(
            Prefetch("turns", queryset=Turn.objects.defer(*trial_read.TURN_FIELDS_UNREAD).order_by("index"))
        )
        .get(pk=trial_id)
    )


def fields(instance) -> dict:
    """Every loaded field's value and its type, as the instance holds it (deferred fields are absent): True and 1
    differ (SQLite's booleans are integers until converted)."""
    return {
        field.attname: (type(value := getattr(instance, field.attname)), value)
        for field in instance._meta.concrete_fields
        if field.attname not in instance.get_deferred_fields()
    }


@pytest.fixture
def mid_debate(make_model_config, make_experiment, judge):
    """An opened live debate with every kind of field set: round 1 done, the judge's leaning and a question asked,
    the next speech being written."""
    experiment = make_experiment(make_model_config("m"), mode="live", rounds=3, min_rounds=1, turn_style="sequential")
    experiment_launch(experiment=experiment)
    trial = first_trial(experiment)
    trial_open(trial=trial)
    finish_round(trial)
    live_move(trial_id=trial.pk, judge=judge, action="lean", chosen="A", probability="0.7")
    live_move(trial_id=trial.pk, judge=judge, action="ask", text="Where does the passage say so? <b>\u00e9</b>")
    writing = trial.turns.exclude(status=Turn.Status.DONE).order_by("index").first()
    Turn.objects.filter(pk=writing.pk).update(
        status=Turn.Status.RUNNING, partial_text="The first words", claimed_at=timezone.now(), claim_token="t"
    )
    return trial


def test_the_read_is_the_orms_field_for_field_and_reads_nothing_more(mid_debate, judge, django_assert_num_queries):
    # Transcript order against the order the rows were written in (and stored in, on PostgreSQL): only the read's
    # ORDER BY puts them in transcript order.
    written = list(Turn.objects.filter(trial=mid_debate).order_by("pk"))
    Turn.objects.filter(trial=mid_debate).update(index=F("index") + 1000)
    for position, turn in enumerate(written):
        Turn.objects.filter(pk=turn.pk).update(index=len(written) - 1 - position)
    expected = orm_read(mid_debate.pk)
    with django_assert_num_queries(2):
        read = trial_read.judge_trial(mid_debate.pk, judge.pk)
    assert read.leanings and read.opened_at is not None  # the fields with converters are set (JSON, dates)
    with django_assert_num_queries(0):  # wired as select_related and prefetch_related wire it
        question, experiment, turns = read.question, read.experiment, list(read.turns.all())
        assert all(turn.trial is read for turn in turns)
    assert fields(read) == fields(expected)
    assert fields(question) == fields(expected.question)
    assert fields(experiment) == fields(expected.experiment)
    assert experiment.get_deferred_fields() == set(trial_read.EXPERIMENT_FIELDS_UNREAD)
    assert [fields(turn) for turn in turns] == [fields(turn) for turn in expected.turns.all()]
    assert [turn.index for turn in turns] == sorted(turn.index for turn in turns) and len(turns) > 2
    assert {turn.status for turn in turns} >= {Turn.Status.DONE, Turn.Status.RUNNING, Turn.Status.PENDING}
    assert all(turn.get_deferred_fields() == set(trial_read.TURN_FIELDS_UNREAD) for turn in turns)
    # A field left unread is read on access, as the ORM's defer() does.
    assert turns[0].prompt == Turn.objects.get(pk=turns[0].pk).prompt


def test_only_the_judges_own_trials_that_they_may_see_are_read(mid_debate, judge, other_judge):
    assert trial_read.judge_trial(mid_debate.pk, other_judge.pk) is None
    assert trial_read.judge_trial(mid_debate.pk + 10_000, judge.pk) is None
    for status in trial_read.HIDDEN_STATUSES:
        Trial.objects.filter(pk=mid_debate.pk).update(status=status)
        assert trial_read.judge_trial(mid_debate.pk, judge.pk) is None, status
    Trial.objects.filter(pk=mid_debate.pk).update(status=Trial.Status.JUDGED)
    assert trial_read.judge_trial(mid_debate.pk, judge.pk).status == Trial.Status.JUDGED
    # Read too: the views refuse a skipped trial themselves, with their own reason (views._opened_trial).
    Trial.objects.filter(pk=mid_debate.pk).update(
        status=Trial.Status.SKIPPED, skipped_at=timezone.now(), skip_reason="too long"
    )
    assert trial_read.judge_trial(mid_debate.pk, judge.pk).status == Trial.Status.SKIPPED
