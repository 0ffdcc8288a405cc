"""Access decisions stated in docs/security.md: annotators may cancel anyone's run,
viewers nobody's; cancelling is the traces app's own permission."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from traces.models import Trace
from traces.services import trace_create

pytestmark = pytest.mark.django_db


def test_an_annotator_may_cancel_someone_elses_run(client, make_user):
    owner = make_user("bob", "annotator")
    trace = trace_create(name="bob's run", input="x", created_by=owner)
    client.force_login(make_user("anna", "annotator"))
    response = client.post(f"/api/traces/{trace.id}/cancel")
    assert response.status_code == 202
    assert Trace.objects.get(pk=trace.id).status == "cancelled"


def test_a_viewer_may_not_cancel(client, make_user):
    trace = trace_create(name="run", input="x", created_by=make_user("bob", "annotator"))
    client.force_login(make_user("vic", "viewer"))
    response = client.post(f"/api/traces/{trace.id}/cancel")
    assert (response.status_code, response.json()) == (
        403,
        {"error": "your role does not allow this", "code": "forbidden"},
    )
    page = client.post(f"/traces/{trace.id}/cancel/", follow=True)
    assert "cannot cancel runs" in page.content.decode()
    assert Trace.objects.get(pk=trace.id).status == "queued"


def test_cancelling_needs_the_traces_permission_not_the_agents_one(client, make_user):
    user = make_user("runner", "viewer")
    user.user_permissions.add(Permission.objects.get(codename="run_agent"))
    trace = trace_create(name="run", input="x")
    client.force_login(user)
    assert client.post(f"/api/traces/{trace.id}/cancel").status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="cancel_trace"))
    client.force_login(user)
    assert client.post(f"/api/traces/{trace.id}/cancel").status_code == 202
