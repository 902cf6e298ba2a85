"""What the admin's experiment form posts: the experiment's fields and the line-up inline."""


def experiment_form(question_set, debater_model, *members: dict, **fields) -> dict:
    """A valid add-experiment post (a pre-generated debate on 4 questions), with ``fields`` overriding
    the experiment's and one line-up form per member ({"arm", "model_config", "role"})."""
    data = {
        "name": "from the form",
        "conditions": ["debate"],
        "question_set": question_set.pk,
        "num_questions": 4,
        "judgments_per_question": 1,
        "mode": "pregenerated",
        "rounds": 2,
        "turn_style": "simultaneous",
        "char_limit": 500,
        "quote_limit": 250,
        "debater_model": debater_model.pk,
        "seed": 1,
        "pairing": "self-play",
        "scoring_rule": "log",
        "round_penalty": 0,
    } | fields
    return data | lineup_forms(*members)


def lineup_forms(*members: dict) -> dict:
    """The line-up inline's management form and one form per member."""
    data = {
        "lineup-TOTAL_FORMS": str(len(members)),
        "lineup-INITIAL_FORMS": "0",
        "lineup-MIN_NUM_FORMS": "0",
        "lineup-MAX_NUM_FORMS": "1000",
    }
    for i, member in enumerate(members):
        data |= {f"lineup-{i}-{key}": value for key, value in member.items()}
    return data
