from django.urls import path

from . import views

app_name = "judging"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("queue.json", views.queue_json, name="queue_json"),
    path("next/", views.next_trial, name="next"),
    path("trials/<int:trial_id>/", views.trial_page, name="trial"),
    path("trials/<int:trial_id>/verdict/", views.submit_verdict, name="verdict"),
    path("trials/<int:trial_id>/beat/", views.active_time_beat, name="beat"),
    path("trials/<int:trial_id>/skip/", views.skip_trial, name="skip"),
    path("trials/<int:trial_id>/state.json", views.trial_state, name="trial_state"),
    path("trials/<int:trial_id>/live/", views.trial_live, name="trial_live"),
    path("trials/<int:trial_id>/move/", views.live_move, name="live_move"),
]
