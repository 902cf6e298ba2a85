"""What the admin's experiment form posts besides the experiment's own fields: the line-up inline."""


def lineup_forms(*members: dict) -> dict:
    """The line-up inline's management form and one form per member ({"arm", "model_config", "role"})."""
    data = {
        "lineup-TOTAL_FORMS": str(len(members)),
        "lineup-INITIAL_FORMS": "0",
        "lineup-MIN_NUM_FORMS": "0",
        "lineup-MAX_NUM_FORMS": "1000",
    }
    for i, member in enumerate(members):
        data |= {f"lineup-{i}-{key}": value for key, value in member.items()}
    return data
