"""Tools an agent can call, each with the JSON Schema every call is validated against."""

from __future__ import annotations

from django.db import models
from django.urls import reverse


class Tool(models.Model):
    class Kind(models.TextChoices):
        PYTHON = "python", "Python function"
        HTTP = "http", "HTTP (OpenAPI)"
        MCP = "mcp", "MCP server tool"
        CODE = "code", "Sandboxed code"

    name = models.CharField(
        max_length=64,
        unique=True,
        help_text="What the model calls it: letters, digits, _ and - (OpenAI's rule).",
    )
    description = models.TextField(blank=True)
    parameters = models.JSONField(
        default=dict, blank=True, help_text="JSON Schema of the arguments object."
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PYTHON)
    config = models.JSONField(
        default=dict,
        blank=True,
        help_text="Kind-specific: for python, {'callable': 'module:function'}.",
    )
    timeout_seconds = models.FloatField(default=30.0)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("toolsapp:tool_detail", args=[self.name])

    def openai_spec(self) -> dict:
        """The tool as the OpenAI chat API's ``tools`` entry."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters or {"type": "object", "properties": {}},
            },
        }


class Toolset(models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(unique=True)
    description = models.TextField(blank=True)
    tools = models.ManyToManyField(Tool, related_name="toolsets", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
