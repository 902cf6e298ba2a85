"""Driving the judge's pages from a test client."""

from django.urls import reverse


def open_trial(client, trial):
    """Start a trial as the judge does (press *Start*: a POST) and return the trial page it leads to."""
    trial_id = getattr(trial, "pk", trial)
    response = client.post(reverse("judging:start", args=[trial_id]), follow=True)
    assert response.redirect_chain == [(reverse("judging:trial", args=[trial_id]), 302)], response.content[:500]
    return response
