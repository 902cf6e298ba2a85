from django.urls import path

from . import power_page, views

app_name = "results"

urlpatterns = [
    path("throughput/", views.throughput, name="throughput"),
    path("export/", views.export, name="export"),
    path("analysis/", views.analysis, name="analysis"),
    path("power/", power_page.power_calculator, name="power"),
]
