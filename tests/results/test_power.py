"""Power and sample size: results.power on simulated studies, the page /results/power/ and `manage.py power_analysis`.

Seeded and small (few studies, 100 resamples), so the figures are the same on every run and the file runs in
seconds; the thresholds leave room for the Monte Carlo error the figures come with.
"""

import io
import math
import re
from dataclasses import replace

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from results import power, power_page
from results.simulation import Design, Truth

RESAMPLES = 100
PLAN = {"alpha": 0.05, "margin": 0.05}
# A world where more questions help: judges differ little, so they do not cap the power.
STEADY = Truth(accuracy={"debate": 0.62}, judge_sd=0.2, question_sd=0.5)
ABOVE_CHANCE = ["above-chance:debate"]


@pytest.fixture
def small_page(monkeypatch):
    """The page's calculation at a size a test can afford (its defaults take seconds to tens of seconds)."""
    monkeypatch.setattr(
        power_page,
        "PAGE",
        {"studies": 20, "search_studies": 10, "resamples": RESAMPLES, "cap": 400, "resolution": 0.25}
        | {"check_budget": 60_000},
    )


# ------------------------------------------------------------------------------------ results.power ----
def test_power_rises_with_the_number_of_questions():
    small, large = (
        power.power(
            Design(num_questions=n, judgments_per_question=2, judges=4),
            STEADY,
            ABOVE_CHANCE,
            studies=60,
            resamples=RESAMPLES,
            **PLAN,
        )["above-chance:debate"]
        for n in (10, 120)
    )
    assert small.studies == large.studies == 60
    assert large.rate - small.rate > 2 * math.hypot(small.error, large.error), (small, large)


def test_under_a_null_truth_power_is_the_false_pass_rate_near_alpha():
    null = Truth(accuracy={"debate": 0.5}, judge_sd=0.5, question_sd=1.0)
    result = power.power(Design(), null, ABOVE_CHANCE, studies=200, resamples=RESAMPLES, **PLAN)["above-chance:debate"]
    # One-sided at 0.05: at most alpha plus three Monte Carlo standard errors of a rate of alpha.
    assert result.rate <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 200), result
    assert result.error == pytest.approx(math.sqrt(max(result.rate * (1 - result.rate), 1 / 200) / 200))


def test_judgments_needed_finds_a_design_whose_power_reaches_the_target_on_fresh_studies():
    design = Design(num_questions=20, judgments_per_question=2, judges=4)
    search = power.judgments_needed(design, STEADY, ABOVE_CHANCE, studies=40, resamples=RESAMPLES, **PLAN)
    needed = search.needed["above-chance:debate"]
    assert needed.questions is not None and needed.questions > design.num_questions  # 20 questions are too few
    assert needed.judgments == needed.questions * 2 and search.questions_for_all == needed.questions
    assert needed.power.rate >= power.TARGET
    # Every smaller size the search tried fell short: it reports the smallest that reached the target.
    assert all(p["above-chance:debate"].rate < power.TARGET for q, p in search.tried.items() if q < needed.questions)
    fresh = power.power(
        Design(num_questions=needed.questions, judgments_per_question=2, judges=4),
        STEADY,
        ABOVE_CHANCE,
        studies=100,
        resamples=RESAMPLES,
        seed=10_000,  # studies the search never saw
        **PLAN,
    )["above-chance:debate"]
    assert fresh.rate >= power.TARGET - needed.power.error, (fresh, needed)


def test_beyond_the_cap_it_says_so_and_far_sizes_stop_early():
    # Two judges who differ a lot: more questions cannot make "above chance" certain.
    truth = Truth(accuracy={"debate": 0.55}, judge_sd=1.5, question_sd=1.0)
    design = Design(num_questions=10, judgments_per_question=1, judges=2)
    search = power.judgments_needed(design, truth, ABOVE_CHANCE, studies=40, resamples=RESAMPLES, cap=200, **PLAN)
    needed = search.needed["above-chance:debate"]
    assert needed.questions is None and needed.judgments is None and search.questions_for_all is None
    assert max(search.tried) == 200  # the cap's own size was tried
    assert needed.power.rate < power.TARGET
    assert any(p["above-chance:debate"].studies < 40 for p in search.tried.values())  # clearly short: stopped early


def test_a_family_is_sized_per_comparison_and_together():
    design = Design(arms=("debate", "consultancy"), num_questions=20, judgments_per_question=2, judges=4)
    truth = Truth(
        accuracy={"debate": 0.8, "honest consultant": 0.7, "dishonest consultant": 0.5}, judge_sd=0.2, question_sd=0.5
    )
    keys = ["above-chance:debate", "difference:debate:consultancy"]
    sizing = power.size_study(
        design, truth, keys, studies=20, search_studies=20, resamples=RESAMPLES, cap=1_000, resolution=0.25, **PLAN
    )
    assert set(sizing.at_design) == set(sizing.search.needed) == set(keys)
    easy, hard = (sizing.search.needed[k] for k in keys)
    assert easy.questions is not None and hard.questions is not None and easy.questions < hard.questions
    assert sizing.search.questions_for_all == hard.questions
    assert sizing.search.tried[20] is sizing.at_design  # the design's own simulation is reused by the search
    # The recommended size is simulated again on studies the search never saw, as many as at the design.
    fresh = power.power(
        replace(design, num_questions=hard.questions),
        truth,
        keys,
        studies=20,
        resamples=RESAMPLES,
        seed=20,
        **PLAN,
    )
    assert sizing.check == fresh and all(p.studies == 20 for p in sizing.check.values())
    assert sizing.check_falls_short == any(p.rate + 2 * p.error < power.TARGET for p in fresh.values())


def test_a_check_short_of_the_target_says_so():
    def size(**budget):
        design = Design(num_questions=20, judgments_per_question=2, judges=4)
        small = {"studies": 10, "search_studies": 10, "resamples": RESAMPLES, "cap": 400}
        return power.size_study(design, STEADY, ABOVE_CHANCE, **small, **budget, **PLAN)

    sizing = size()
    assert sizing.check is not None and not sizing.check_skipped

    def checked(passed):
        return replace(sizing, check={"above-chance:debate": power.Power("above-chance:debate", passed, 10)})

    # 2 of 10 is short by more than its Monte Carlo error; 7 of 10 (± 14.5 points) is not shown to be.
    assert checked(2).check_falls_short and not checked(7).check_falls_short and not checked(8).check_falls_short
    assert not replace(sizing, check=None).check_falls_short
    # A check that would simulate more judgments than its budget is not run, and that is said.
    judgments = sizing.search.questions_for_all * 2
    over = size(check_budget=10 * judgments - 1)
    assert (
        over.check is None and over.check_skipped and over.search.questions_for_all == sizing.search.questions_for_all
    )


@pytest.mark.parametrize(
    "design,truth,keys,field",
    [
        (Design(), Truth(accuracy={"debate": 1.0}), ABOVE_CHANCE, "accuracy:debate"),
        (Design(), Truth(accuracy={"debate": 0.0}), ABOVE_CHANCE, "accuracy:debate"),
        (Design(), Truth(accuracy={"debate": math.nan}), ABOVE_CHANCE, "accuracy:debate"),
        (
            Design(arms=("consultancy",)),
            Truth(accuracy={"honest consultant": 0.8}),
            [],
            "accuracy:dishonest consultant",
        ),
        (Design(judgments_per_question=7, judges=6), Truth(), ABOVE_CHANCE, "judgments_per_question"),
        (Design(), Truth(), ["sandwich-robust"], "comparisons"),
        (Design(), Truth(), [], "comparisons"),
        (Design(arms=("debate", "bogus")), Truth(), ABOVE_CHANCE, "arms"),
        (Design(num_questions=0), Truth(), ABOVE_CHANCE, "num_questions"),
        (Design(num_questions=10_000), Truth(), ABOVE_CHANCE, "num_questions"),
        (Design(), Truth(judge_sd=-1), ABOVE_CHANCE, "judge_sd"),
        (Design(), Truth(model_accuracy=1.2), ABOVE_CHANCE, "model_accuracy"),
    ],
)
def test_inputs_that_cannot_be_simulated_are_refused_by_name(design, truth, keys, field):
    with pytest.raises(power.PowerInputError) as caught:
        power.power(design, truth, keys, studies=10, resamples=RESAMPLES, **PLAN)
    assert field in caught.value.errors, caught.value.errors


def test_alpha_margin_and_target_are_checked():
    errors = power.input_errors(Design(), Truth(), ABOVE_CHANCE, alpha=0.5, margin=-1, target=1.0)
    assert set(errors) == {"alpha", "margin", "target"}


# ----------------------------------------------------------------------------------------- the page ----
URL = "/results/power/"


def page_values(**overrides):
    values = {
        "arms": ["debate"],
        "num_questions": "20",
        "judgments_per_question": "2",
        "judges": "4",
        "accuracy_debate": "0.62",
        "model_accuracy": "0.6",
        "judge_sd": "0.2",
        "question_sd": "0.5",
        "comparisons": ["above-chance:debate"],
        "alpha": "0.05",
        "margin": "0.05",
    }
    return values | overrides


def test_the_page_is_prefilled_from_an_experiment(admin_client, make_experiment, make_model_config, judge, other_judge):
    experiment = make_experiment(
        make_model_config("m"),
        judges=[judge, other_judge],
        conditions=["naive", "assisted-honest", "assisted-misleading"],
        num_questions=9,
        judgments_per_question=2,
        primary_comparisons=["sandwich-robust"],
        non_inferiority_margin=0.07,
    )
    response = admin_client.get(URL, {"experiment": experiment.pk})
    assert response.status_code == 200
    form = response.context["form"]
    assert not form.is_bound  # prefilled, not calculated: the accuracies are the researcher's to state
    assert form["num_questions"].value() == 9 and form["judgments_per_question"].value() == 2
    assert form["judges"].value() == 2 and form["margin"].value() == 0.07
    assert form["arms"].value() == ["naive", "assisted-honest", "assisted-misleading"]
    assert form["comparisons"].value() == ["sandwich-robust"]
    body = response.content.decode()
    assert "Test experiment" in body and 'id="power-table"' not in body


def test_the_page_reports_power_and_the_judgments_needed(admin_client, small_page):
    response = admin_client.get(URL, page_values())
    assert response.status_code == 200, response.context["form"].errors
    sizing = response.context["sizing"]
    body = response.content.decode()
    assert 'id="power-table"' in body and 'id="assumptions"' in body and "Monte Carlo" in body
    # The results come first, as percentages like the 80% target, then the inputs to change.
    assert body.index('id="power-table"') < body.index('class="power-form"')
    at_design = sizing.at_design["above-chance:debate"]
    assert f"{100 * at_design.rate:.1f}% ± {100 * at_design.error:.1f}%" in body
    needed = sizing.search.needed["above-chance:debate"]
    if needed.questions:
        assert f"{needed.judgments} <small>({needed.questions} questions × 2)" in body
        check = sizing.check["above-chance:debate"]
        assert 'id="check"' in body and f"{100 * check.rate:.1f}% ± {100 * check.error:.1f}%" in body
        assert ("Short of 80% by more than" in body) == sizing.check_falls_short
    else:
        assert "more than 400" in body and 'id="check"' not in body
    # Where the check would simulate more than the page's budget, the page says so and points at the command.
    power_page.PAGE["check_budget"] = 1
    skipped = admin_client.get(URL, page_values())
    if skipped.context["sizing"].search.questions_for_all:
        assert "too large to simulate again here" in skipped.content.decode()
    # POST gives the same calculation (same seed).
    posted = admin_client.post(URL, page_values())
    assert posted.status_code == 200
    assert posted.context["sizing"].at_design == sizing.at_design


def test_the_page_escapes_and_refuses_bad_input_with_form_errors(admin_client, client, judge, small_page):
    cases = {
        "accuracy_debate": page_values(accuracy_debate="1"),
        "judgments_per_question": page_values(judgments_per_question="5"),
        "comparisons": page_values(comparisons=["sandwich-helpful"]),
        "judges": page_values(judges="<b>x</b>"),
    }
    for field, values in cases.items():
        response = admin_client.get(URL, values)
        assert response.status_code == 400, field
        assert field in response.context["form"].errors, (field, response.context["form"].errors)
        assert "sizing" not in response.context
    body = admin_client.get(URL, page_values(judges="<b>x</b>")).content.decode()
    assert "<b>x</b>" not in body and "&lt;b&gt;x&lt;/b&gt;" in body
    # An arm's accuracy left blank: named, not a crash.
    missing = admin_client.get(URL, page_values(arms=["consultancy"], comparisons=["above-chance:consultancy"]))
    assert missing.status_code == 400
    assert "accuracy_honest_consultant" in missing.context["form"].errors
    unknown = admin_client.get(URL, {"experiment": "999999"})
    assert unknown.status_code == 400 and "no experiment with id" in unknown.content.decode()
    assert admin_client.get(URL, {"experiment": "x<script>"}).status_code == 400
    assert admin_client.get(URL, {"experiment": "9" * 30}).status_code == 400  # beyond any database integer
    assert admin_client.get(URL, page_values(num_questions="9" * 30)).status_code == 400
    client.force_login(judge)
    assert client.get(URL).status_code == 302  # researchers only


def test_the_experiment_admin_form_links_to_the_page(admin_client, make_experiment, make_model_config):
    experiment = make_experiment(make_model_config("m"))
    body = admin_client.get(f"/admin/judging/experiment/{experiment.pk}/change/").content.decode()
    assert f'href="{URL}?experiment={experiment.pk}"' in body
    assert f'href="{URL}"' in admin_client.get("/admin/judging/experiment/add/").content.decode()


# -------------------------------------------------------------------------------------- the command ----
SMALL = ["--studies", "20", "--search-studies", "10", "--resamples", str(RESAMPLES), "--cap", "400"]


def test_the_command_sizes_an_experiment_and_an_explicit_design(make_experiment, make_model_config, judge, other_judge):
    experiment = make_experiment(make_model_config("m"), judges=[judge, other_judge], num_questions=10)
    out = io.StringIO()
    call_command("power_analysis", "--experiment", str(experiment.pk), "--accuracy", "debate=0.9", *SMALL, stdout=out)
    text = out.getvalue()
    assert "10 questions x 1 judgments = 10 judgments; 2 judges" in text
    assert "accuracy debate 0.9;" in text and "above-chance:debate" in text  # the first comparison its arms allow

    out = io.StringIO()
    call_command(
        "power_analysis",
        "--arms",
        "debate",
        "consultancy",
        "--questions",
        "20",
        "--judgments",
        "2",
        "--judges",
        "4",
        "--accuracy",
        "honest consultant=0.7",
        "--compare",
        "difference:debate:consultancy",
        "--judge-sd",
        "0.2",
        *SMALL,
        stdout=out,
    )
    text = out.getvalue()
    assert "debate 0.7 (placeholder), honest consultant 0.7, dishonest consultant 0.5 (placeholder)" in text
    assert "difference:debate:consultancy" in text and "Sizes simulated" in text


@pytest.mark.parametrize(
    "arguments,message",
    [
        (["--accuracy", "debate=1"], "--accuracy debate=P: strictly between 0 and 1"),
        (["--accuracy", "debate"], "give CONDITION=P"),
        (["--accuracy", "nobody=0.5"], "unknown condition 'nobody'"),
        (["--judgments", "9"], "--judgments: 9 judgments per question need at least that many judges"),
        (["--compare", "sandwich-robust"], "--compare: 'sandwich-robust' is not available with arms debate"),
        (["--arms", "debate", "bogus"], "--arms: one or more distinct arms"),
        (["--experiment", "999999"], "no experiment with id 999999"),
        (["--studies", "1"], "--studies must be at least 10"),
    ],
)
@pytest.mark.django_db
def test_the_command_refuses_bad_input_with_a_clear_message(arguments, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("power_analysis", *SMALL, *arguments, stdout=io.StringIO())
