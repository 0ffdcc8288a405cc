"""Forms for building agents and endpoints in the app (validation lives here and in the
models; the views only save through the services)."""

from __future__ import annotations

from django import forms

from toolsapp.models import Toolset

from .models import Agent, ModelEndpoint


class EndpointForm(forms.ModelForm):
    base_url = forms.URLField(
        required=False,
        assume_scheme="http",
        help_text="openai: e.g. http://127.0.0.1:11434/v1",
    )

    class Meta:
        model = ModelEndpoint
        fields = [
            "name",
            "kind",
            "base_url",
            "model",
            "api_key_env",
            "config",
            "price_per_1k_prompt_tokens",
            "price_per_1k_completion_tokens",
        ]
        widgets = {"config": forms.Textarea(attrs={"rows": 5, "class": "mono"})}

    def clean_config(self):
        config = self.cleaned_data.get("config")
        if config in (None, ""):
            return {}
        if not isinstance(config, dict):
            raise forms.ValidationError('config must be a JSON object, e.g. {"timeout": 30}')
        return config

    def clean(self):
        data = super().clean()
        kind = data.get("kind")
        config = data.get("config") or {}
        if kind == ModelEndpoint.Kind.OPENAI:
            if not data.get("base_url"):
                self.add_error("base_url", "an OpenAI-compatible endpoint needs its base URL")
            if not data.get("model"):
                self.add_error("model", "say which model to ask for")
        if kind == ModelEndpoint.Kind.SCRIPTED and not isinstance(config.get("script"), list):
            self.add_error("config", 'a scripted endpoint needs {"script": [reply, …]}')
        for key in ("temperature", "timeout"):
            if key in config and not isinstance(config[key], int | float):
                self.add_error("config", f"config.{key} must be a number")
        return data


class AgentForm(forms.ModelForm):
    class Meta:
        model = Agent
        fields = [
            "name",
            "slug",
            "description",
            "endpoint",
            "toolset",
            "strategy",
            "strategy_config",
            "system_prompt",
            "max_steps",
        ]
        widgets = {
            "strategy_config": forms.Textarea(attrs={"rows": 2, "class": "mono"}),
            "description": forms.Textarea(attrs={"rows": 2}),
            "system_prompt": forms.Textarea(attrs={"rows": 5}),
        }
        help_texts = {"slug": "Used in URLs and the API; it cannot change once runs name it."}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["toolset"].queryset = Toolset.objects.order_by("name")
        self.fields["toolset"].empty_label = "No tools"
        if self.instance.pk:
            # Traces name their agent by slug: renaming it would orphan them.
            self.fields["slug"].disabled = True

    def clean_strategy_config(self):
        config = self.cleaned_data.get("strategy_config")
        if config in (None, ""):
            return {}
        if not isinstance(config, dict):
            raise forms.ValidationError('a JSON object, e.g. {"max_rounds": 2}')
        return config

    def clean_max_steps(self):
        value = self.cleaned_data["max_steps"]
        if not 1 <= value <= 100:
            raise forms.ValidationError("between 1 and 100 model turns")
        return value


class RunAgainForm(forms.Form):
    input = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), strip=True)
