"""Tools an agent can call, each with the JSON Schema every call is validated against.

A tool comes from a *source*: built-in or registered Python functions and code tools have
none (``source == ""``); HTTP tools come from an ``HttpToolSource`` (one OpenAPI spec) and
MCP tools from an ``McpServer``. Names are unique within a source, not globally: two APIs
may both have ``getUser``. Tools are never deleted once traces may point at them; a tool
that left its source is ``inactive``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlencode

from django.db import models
from django.urls import reverse


class HttpToolSource(models.Model):
    """One imported OpenAPI spec: where its operations are called and how they authenticate.
    The secret itself is never stored, only the name of the environment variable holding it."""

    class Auth(models.TextChoices):
        NONE = "none", "None"
        API_KEY_HEADER = "api_key_header", "API key in a header"
        API_KEY_QUERY = "api_key_query", "API key in the query string"
        BEARER = "bearer", "Bearer token"

    name = models.SlugField(max_length=100, unique=True)
    title = models.CharField(max_length=200, blank=True)
    base_url = models.CharField(max_length=500, blank=True)
    auth = models.CharField(max_length=20, choices=Auth.choices, default=Auth.NONE)
    auth_name = models.CharField(
        max_length=100, blank=True, help_text="Header or query parameter that carries the key."
    )
    secret_env = models.CharField(
        max_length=100, blank=True, help_text="Environment variable holding the secret."
    )
    spec = models.JSONField(default=dict, blank=True, help_text="The spec as last imported.")
    spec_sha256 = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class McpServer(models.Model):
    """An MCP server reached over stdio (a command) or streamable HTTP (a URL)."""

    class Transport(models.TextChoices):
        STDIO = "stdio", "stdio (command)"
        HTTP = "http", "Streamable HTTP (URL)"

    name = models.SlugField(max_length=100, unique=True)
    transport = models.CharField(max_length=8, choices=Transport.choices)
    command = models.TextField(blank=True, help_text="stdio: the command line that starts it.")
    url = models.CharField(max_length=500, blank=True, help_text="http: the server's MCP URL.")
    env = models.JSONField(
        default=dict, blank=True, help_text="Extra environment for a stdio server (no secrets)."
    )
    enabled = models.BooleanField(default=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


def tool_fingerprint(*, description: str, parameters: Any, config: Any) -> str:
    """What a tool does, as one hash: equal fingerprints, same tool."""
    canonical = json.dumps(
        [description, parameters, config], sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class Tool(models.Model):
    class Kind(models.TextChoices):
        PYTHON = "python", "Python function"
        HTTP = "http", "HTTP (OpenAPI)"
        MCP = "mcp", "MCP server tool"
        CODE = "code", "Sandboxed code"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        DRAFT = "draft", "Draft"
        INACTIVE = "inactive", "Inactive"

    name = models.CharField(
        max_length=64,
        help_text="What the model calls it: letters, digits, _ and - (OpenAI's rule). "
        "Unique within its source.",
    )
    source = models.CharField(
        max_length=120,
        blank=True,
        default="",
        help_text="'' for Python and code tools, 'openapi:<name>' or 'mcp:<name>' otherwise.",
    )
    http_source = models.ForeignKey(
        HttpToolSource, null=True, blank=True, on_delete=models.PROTECT, related_name="tools"
    )
    mcp_server = models.ForeignKey(
        McpServer, null=True, blank=True, on_delete=models.PROTECT, related_name="tools"
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
    fingerprint = models.CharField(
        max_length=64,
        blank=True,
        editable=False,
        help_text="sha256 of description, parameters and config: re-imports compare this.",
    )
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.ACTIVE, db_index=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "source"]
        constraints = [
            models.UniqueConstraint(fields=["source", "name"], name="tool_name_unique_per_source")
        ]
        permissions = [
            ("run_tool", "Can run a tool from its page"),
            ("import_tools", "Can import tools (OpenAPI specs)"),
        ]

    def __str__(self) -> str:
        return f"{self.source}/{self.name}" if self.source else self.name

    def save(self, *args, **kwargs) -> None:
        self.fingerprint = tool_fingerprint(
            description=self.description, parameters=self.parameters, config=self.config
        )
        if kwargs.get("update_fields") is not None:
            kwargs["update_fields"] = {*kwargs["update_fields"], "fingerprint"}
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        url = reverse("toolsapp:tool_detail", args=[self.name])
        return f"{url}?{urlencode({'source': self.source})}" if self.source else url

    @property
    def source_label(self) -> str:
        """The source's own name (``github`` for ``openapi:github``), '' for none."""
        return self.source.partition(":")[2]

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

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

    def get_absolute_url(self) -> str:
        return reverse("toolsapp:toolset_detail", args=[self.slug])


class ToolIndexChange(models.Model):
    """One row per write to a tool, written in the writer's own transaction (so a rolled-back
    import leaves none). Each process's retrieval index applies the rows after the last one
    it has seen, re-embedding only those tools (``toolsapp.retrieval.store``). ``tool_id``
    is not a foreign key: the row must outlive a deleted tool."""

    tool_id = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"change {self.pk}: tool {self.tool_id}"
