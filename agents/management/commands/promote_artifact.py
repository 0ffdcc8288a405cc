import json

from django.core.management.base import BaseCommand, CommandError

from agents.models import Agent
from agents.training.models import ModelArtifact
from agents.training.promote import PromoteError, artifact_promote


class Command(BaseCommand):
    help = (
        "Serve a model artifact as an hf endpoint and copy an agent onto it. Last line: "
        '{"endpoint": ..., "agent": NEW_SLUG} (runnable with run_agent).'
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("artifact")
        parser.add_argument("--agent", required=True, help="the agent to copy")

    def handle(self, *args, **options) -> None:
        artifact = ModelArtifact.objects.filter(name=options["artifact"]).first()
        if artifact is None:
            raise CommandError(f"no artifact named {options['artifact']!r}")
        agent = Agent.objects.filter(slug=options["agent"]).first()
        if agent is None:
            raise CommandError(f"no agent {options['agent']!r}")
        try:
            endpoint, copy = artifact_promote(artifact=artifact, agent=agent)
        except PromoteError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps({"endpoint": endpoint.name, "agent": copy.slug}))
