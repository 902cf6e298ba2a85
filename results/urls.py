from django.urls import path

from . import power_page, views

app_name = "results"

urlpatterns = [
    path("throughput/", views.throughput, name="throughput"),
    path("export/", views.export, name="export"),
    path("analysis/", views.analysis, name="analysis"),
    path("analysis/judge-quality.csv", views.judge_quality_csv, name="judge_quality_csv"),
    path("power/", power_page.power_calculator, name="power"),
]
