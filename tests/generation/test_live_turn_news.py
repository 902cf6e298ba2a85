"""LiveTurnNews: between a worker's full looks for ready turns, whether a take for live turns alone may find one."""

import math
from unittest import mock

from generation.selection import LiveTurnNews
from judging.models import Trial, Turn
from judging.services import experiment_launch, trial_open


def full_takes_never_due():
    return mock.patch("inference.base.TAKE_INTERVAL", math.inf)


def nothing_ready():
    return []


def test_only_a_new_pending_live_turn_is_news_between_full_looks(make_model_config, make_experiment):
    config = make_model_config("any-model")
    news = LiveTurnNews()
    assert news.any()  # never looked: look
    live = make_experiment(config, name="live", mode="live", rounds=2, min_rounds=1, num_questions=1)
    experiment_launch(experiment=live)
    with full_takes_never_due():
        news.look(nothing_ready)
        assert not news.any()  # nothing since the look
        pre_generated = make_experiment(config, name="pre-generated", num_questions=1)
        experiment_launch(experiment=pre_generated)
        assert Turn.objects.filter(trial__experiment=pre_generated, status="pending").exists()
        assert not news.any()  # pre-generated turns wait for the full take
        trial = Trial.objects.get(experiment=live)
        trial_open(trial=trial)  # the live debate's first round: new pending turns
        assert news.any()
        news.look(nothing_ready)
        assert not news.any()
        Turn.objects.filter(trial=trial).update(status="done")
        Turn.objects.filter(trial=trial).update(status="pending")  # a claim released: due again, but not new
        assert not news.any()
    with mock.patch("inference.base.TAKE_INTERVAL", 0):
        assert news.any()  # once TAKE_INTERVAL has gone by, a full look: what is due without being new is found


def test_a_person_s_turn_is_not_news(make_model_config, make_experiment, judge):
    live = make_experiment(make_model_config("any-model"), mode="live", rounds=2, min_rounds=1, num_questions=1)
    experiment_launch(experiment=live)
    news = LiveTurnNews()
    with full_takes_never_due():
        news.look(nothing_ready)
        trial_open(trial=Trial.objects.get(experiment=live))
        debaters = Turn.objects.filter(trial__experiment=live).exclude(speaker="judge")
        debaters.update(author=judge, model_config=None)  # written by a person, never generated
        assert not news.any()


def test_a_turn_made_while_a_full_look_reads_the_trials_is_news_after_it(make_model_config, make_experiment):
    config = make_model_config("any-model")
    live = make_experiment(config, mode="live", rounds=2, min_rounds=1, num_questions=1)
    experiment_launch(experiment=live)
    news = LiveTurnNews()

    def read_while_a_judge_opens_the_debate():
        trial_open(trial=Trial.objects.get(experiment=live))  # after the trials were read: not in what was read
        return []

    with full_takes_never_due():
        assert news.look(read_while_a_judge_opens_the_debate) == []
        assert news.any()
