from django.contrib import admin

from .models import ModelConfig


@admin.register(ModelConfig)
class ModelConfigAdmin(admin.ModelAdmin):
    list_display = ["name", "backend", "model_name", "temperature", "top_p", "max_new_tokens"]
    search_fields = ["name", "model_name"]
