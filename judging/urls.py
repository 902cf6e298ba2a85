from django.urls import path

from . import debater_views, views

app_name = "judging"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("queue.json", views.queue_json, name="queue_json"),
    path("next/", views.next_trial, name="next"),
    path("studies/<int:experiment_id>/instructions/", views.instructions, name="instructions"),
    path("history/", views.judge_history, name="history"),
    path("trials/<int:trial_id>/", views.trial_page, name="trial"),
    path("trials/<int:trial_id>/start/", views.start_trial, name="start"),
    path("trials/<int:trial_id>/verdict/", views.submit_verdict, name="verdict"),
    path("trials/<int:trial_id>/beat/", views.active_time_beat, name="beat"),
    path("trials/<int:trial_id>/skip/", views.skip_trial, name="skip"),
    path("trials/<int:trial_id>/state.json", views.trial_state, name="trial_state"),
    path("trials/<int:trial_id>/live/", views.trial_live, name="trial_live"),
    path("trials/<int:trial_id>/live/stream/", views.trial_stream, name="trial_stream"),
    path("trials/<int:trial_id>/move/", views.live_move, name="live_move"),
    # Human debaters (judging/debater_views.py)
    path("debate/", debater_views.speeches, name="debater_speeches"),
    path("debate/list/", debater_views.speeches_list, name="debater_speeches_list"),
    path("debate/turns/<int:turn_id>/", debater_views.write, name="debater_write"),
    path("debate/turns/<int:turn_id>/check/", debater_views.check, name="debater_check"),
]
