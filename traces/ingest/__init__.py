"""OTLP ingest: decode OTLP/HTTP requests and map spans onto step records.

Pure functions only (no database): ``decode`` turns a request body into the
OpenTelemetry project's own protobuf message, ``mapping`` turns its spans into
``StepRecord``s, ``otlp_json`` writes spans back out. The endpoint
(``traces.ingest.views``) and the write path (``traces.services.steps_record_bulk``)
sit on either side.
"""
