from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from judging import recruitment_views

admin.site.site_header = "Debate experiments: researcher admin"
admin.site.site_title = "Debate experiments"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="judging:queue", permanent=False)),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("judge/", include("judging.urls")),
    # Invite links (docs/recruitment.md): short, since they are sent to people and pasted into crowd platforms.
    path("join/<str:token>/", recruitment_views.join, name="join"),
    path("results/", include("results.urls")),
]
