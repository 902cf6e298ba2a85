"""judging.trial_read reads a judge's trial as the ORM does (every field, converted as the ORM converts it, on both
databases), wired as select_related and prefetch_related wire it, and refuses what the judge may not read."""

import psycopg
import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection, transaction
from django.db.models import F, Prefetch
from django.db.transaction import TransactionManagementError
from django.utils import timezone

from judging import services, trial_read
from judging.models import Trial, Turn
from judging.services import TRIAL_CONFIGS, experiment_launch, live_move, trial_open
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


def orm_locked(trial_id, judge=None, related=()):
    """The lock's read trial_read.locked_trial replaces, through the ORM (services._lock_trial before)."""
    trials = Trial.objects.select_for_update(of=("self",)).select_related("experiment", *related).filter(pk=trial_id)
    return (trials if judge is None else trials.filter(judge=judge)).get()


@pytest.mark.parametrize("related", [(), ("question",), TRIAL_CONFIGS], ids=["trial", "question", "configs"])
def test_the_lock_reads_what_the_orms_select_for_update_reads(mid_debate, judge, related, django_assert_num_queries):
    with transaction.atomic():
        expected = orm_locked(mid_debate.pk, judge, related)
        for judge_id in (judge.pk, None):  # the judge's trial, or any trial by its key (the worker's reads)
            with django_assert_num_queries(1):
                locked = trial_read.locked_trial(mid_debate.pk, judge_id, related)
            with django_assert_num_queries(0):  # wired as select_related wires it
                relations = {name: getattr(locked, name) for name in ("experiment", *related)}
            assert fields(locked) == fields(expected) and locked.leanings and locked.opened_at is not None
            for name, instance in relations.items():
                assert instance is not None and fields(instance) == fields(getattr(expected, name)), name


def test_a_trial_without_its_configurations_reads_them_as_none(mid_debate, judge, django_assert_num_queries):
    Trial.objects.filter(pk=mid_debate.pk).update(honest_config=None, adversary_config=None)
    with transaction.atomic():
        locked = trial_read.locked_trial(mid_debate.pk, judge.pk, TRIAL_CONFIGS)
        with django_assert_num_queries(0):
            assert locked.honest_config is None and locked.adversary_config is None
        assert fields(locked) == fields(orm_locked(mid_debate.pk, judge, TRIAL_CONFIGS))


def test_the_lock_reads_no_other_judges_trial_and_no_unknown_one(mid_debate, judge, other_judge):
    with transaction.atomic():
        assert trial_read.locked_trial(mid_debate.pk, other_judge.pk) is None
        assert trial_read.locked_trial(mid_debate.pk + 10_000, judge.pk) is None
        assert trial_read.locked_trial(mid_debate.pk + 10_000) is None


@pytest.mark.django_db(transaction=True)
def test_the_lock_holds_the_trials_row_and_no_other(mid_debate, judge):
    """As select_for_update(of=("self",)): the trial's row is locked until the transaction ends; its experiment's
    row is not (services._lock_trial holds it for share, itself, before)."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL (SQLite locks the whole database for a write)")
    trial_table, experiment_table = Trial._meta.db_table, mid_debate.experiment._meta.db_table
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
        with transaction.atomic():
            trial_read.locked_trial(mid_debate.pk, judge.pk, TRIAL_CONFIGS)
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute(f"SELECT 1 FROM {trial_table} WHERE id = %s FOR UPDATE NOWAIT", [mid_debate.pk])
            other.execute(
                f"SELECT 1 FROM {experiment_table} WHERE id = %s FOR UPDATE NOWAIT", [mid_debate.experiment_id]
            )
        other.execute(f"SELECT 1 FROM {trial_table} WHERE id = %s FOR UPDATE NOWAIT", [mid_debate.pk])


def test_a_locked_trials_turns_are_read_as_the_judges_page_reads_them(mid_debate, judge, django_assert_num_queries):
    """prefetch_turns (every beat's): the turns judge_trial reads, in transcript order, wired to the trial."""
    Turn.objects.filter(trial=mid_debate).update(index=F("index") + 1000)  # stored out of transcript order
    for position, turn in enumerate(Turn.objects.filter(trial=mid_debate).order_by("pk")):
        Turn.objects.filter(pk=turn.pk).update(index=100 - position)
    with transaction.atomic():
        locked = trial_read.locked_trial(mid_debate.pk, judge.pk)
        with django_assert_num_queries(1):
            trial_read.prefetch_turns(locked)
        with django_assert_num_queries(0):
            turns = list(locked.turns.all())
            assert all(turn.trial is locked for turn in turns)
    expected = trial_read.judge_trial(mid_debate.pk, judge.pk).turns.all()
    assert [fields(turn) for turn in turns] == [fields(turn) for turn in expected] and len(turns) > 2
    assert [turn.index for turn in turns] == sorted(turn.index for turn in turns)


@pytest.mark.django_db(transaction=True)
def test_the_lock_needs_a_transaction_where_the_database_locks_rows(mid_debate, judge):
    """As the ORM's select_for_update: outside a transaction the lock would be let go as soon as it was taken."""
    if not connection.features.has_select_for_update:
        pytest.skip("SQLite has no row locks: a write transaction locks the whole database")
    with pytest.raises(TransactionManagementError):
        trial_read.locked_trial(mid_debate.pk, judge.pk)


def test_an_anonymous_judge_locks_no_trial(mid_debate):
    """services._lock_trial with a judge that is no person (no key): nobody's trial, not any trial."""
    with transaction.atomic():
        assert services._lock_trial(mid_debate.pk, AnonymousUser()) is None
        assert services._lock_trial(mid_debate.pk, mid_debate.judge).pk == mid_debate.pk
