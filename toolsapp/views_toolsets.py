"""Toolsets in the app: list, read, create, edit (picking tools with a search), duplicate
and delete. Post/Redirect/Get; builders and admins edit (toolsapp's own model
permissions), everyone signed in reads."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from tooltrail.crud import delete_confirmed

from .models import Tool, Toolset
from .services import ToolsetInUse, toolset_delete, toolset_duplicate


class ToolsetForm(forms.ModelForm):
    class Meta:
        model = Toolset
        fields = ["name", "slug", "description", "tools"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["tools"].queryset = Tool.objects.exclude(status=Tool.Status.INACTIVE)
        self.fields["tools"].required = False


def tool_search(*, q: str):
    """Tools whose name or description holds every word of ``q`` (inactive ones left out)."""
    qs = Tool.objects.exclude(status=Tool.Status.INACTIVE).order_by("name", "source")
    for word in q.split():
        qs = qs.filter(Q(name__icontains=word) | Q(description__icontains=word))
    return qs


def _perms(request: HttpRequest) -> dict[str, bool]:
    return {
        f"can_{verb}": request.user.has_perm(f"toolsapp.{verb}_toolset")
        for verb in ("add", "change", "delete")
    }


def toolset_list_view(request: HttpRequest) -> HttpResponse:
    toolsets = Toolset.objects.prefetch_related("tools", "agents")
    return render(request, "toolsapp/toolset_list.html", {"toolsets": toolsets, **_perms(request)})


def toolset_detail_view(request: HttpRequest, slug: str) -> HttpResponse:
    toolset = get_object_or_404(Toolset, slug=slug)
    return render(
        request,
        "toolsapp/toolset_detail.html",
        {
            "toolset": toolset,
            "tools": toolset.tools.order_by("name"),
            "agents": toolset.agents.all(),
            **_perms(request),
        },
    )


def _toolset_form(request: HttpRequest, toolset: Toolset | None) -> HttpResponse:
    form = ToolsetForm(request.POST or None, instance=toolset)
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        messages.success(request, f"Toolset {saved.name} saved with {saved.tools.count()} tools.")
        return redirect(saved.get_absolute_url())
    q = request.GET.get("q", "").strip()
    if form.is_bound:
        chosen = {str(v) for v in form.data.getlist("tools")}
    else:
        chosen = {str(pk) for pk in (toolset.tools.values_list("pk", flat=True) if toolset else [])}
    # Without JavaScript the search narrows the list on the server; the tools already
    # picked always stay listed (and checked) so a search never drops one.
    shown = list(tool_search(q=q)) if q else list(tool_search(q=""))
    shown_ids = {str(t.pk) for t in shown}
    shown += [t for t in Tool.objects.filter(pk__in=chosen) if str(t.pk) not in shown_ids]
    return render(
        request,
        "toolsapp/toolset_form.html",
        {"form": form, "toolset": toolset, "q": q, "tools": shown, "chosen": chosen},
        status=400 if form.errors else 200,
    )


@permission_required("toolsapp.add_toolset", raise_exception=True)
def toolset_create_view(request: HttpRequest) -> HttpResponse:
    return _toolset_form(request, None)


@permission_required("toolsapp.change_toolset", raise_exception=True)
def toolset_edit_view(request: HttpRequest, slug: str) -> HttpResponse:
    return _toolset_form(request, get_object_or_404(Toolset, slug=slug))


@require_POST
@permission_required("toolsapp.add_toolset", raise_exception=True)
def toolset_duplicate_view(request: HttpRequest, slug: str) -> HttpResponse:
    copy = toolset_duplicate(toolset=get_object_or_404(Toolset, slug=slug))
    messages.success(request, f"Copied as {copy.slug}: edit it below.")
    return redirect("toolsapp:toolset_edit", copy.slug)


@permission_required("toolsapp.delete_toolset", raise_exception=True)
def toolset_delete_view(request: HttpRequest, slug: str) -> HttpResponse:
    toolset = get_object_or_404(Toolset, slug=slug)
    return delete_confirmed(
        request,
        obj=toolset,
        delete=lambda: toolset_delete(toolset=toolset),
        refused=ToolsetInUse,
        label="Toolset",
        done="toolsapp:toolset_list",
    )
