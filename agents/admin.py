from django.contrib import admin

from .models import Agent, ModelEndpoint


@admin.register(ModelEndpoint)
class ModelEndpointAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "model", "base_url", "api_key_env"]
    list_filter = ["kind"]
    search_fields = ["name", "model", "base_url"]


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "endpoint", "toolset", "strategy", "max_steps"]
    list_filter = ["strategy", "endpoint__kind"]
    search_fields = ["name", "slug", "description"]
    prepopulated_fields = {"slug": ["name"]}
