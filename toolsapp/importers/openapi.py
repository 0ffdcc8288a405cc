"""OpenAPI 3.0 / 3.1 → one tool draft per operation.

Reading a spec: JSON or YAML, from bytes (an upload, pasted text) or a location (a path
or an ``http(s)://`` / ``file://`` URL). Every problem raises ``SpecError`` naming the file
and the JSON pointer where it is, before anything is written.

Each operation (every method under ``paths``) becomes a ``ToolDraft``:

- **name**: the ``operationId``, else ``<method>_<path>``, made to fit OpenAI's rule
  ``^[a-zA-Z0-9_-]{1,64}$`` (other characters become ``_``; a longer name is cut and
  ends with 8 hex digits of a hash of the whole) and unique within the spec (a repeat
  gets ``_2``, ``_3``…).
- **parameters**: one JSON Schema object. Path, query and header parameters are
  top-level properties under their own names (cookie parameters are left out). A
  parameter whose name another parameter already took is named ``<in>_<name>``
  (``header_id``). The request body (JSON, else form, else any other media type as a
  string) joins the same object: a plain object body's properties become top-level
  properties too, *unless* one of them clashes with a parameter's name or the body is
  not a plain object (``allOf``/``oneOf``/arrays/…); then the whole body is one property,
  ``body`` (``request_body`` if a parameter is called ``body``).
- ``$ref``s are resolved into the tool's own ``$defs`` (each referenced schema once,
  recursion allowed), so the schema is self-contained: no ``$ref`` leaves it. OpenAPI
  3.0 idioms are turned into JSON Schema 2020-12 (``nullable``, boolean
  ``exclusiveMinimum``/``Maximum``, ``type: file``); ``x-`` extensions, ``xml``,
  ``discriminator`` and ``externalDocs`` are dropped; an ECMAScript ``pattern`` that
  Python's ``re`` cannot compile is dropped and quoted in the description.
- **config**: what the ``http`` executor needs to make the request (method, path, which
  property goes where, how the body is sent).
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PARAM_LOCATIONS = ("path", "query", "header", "cookie")
NAME_RULE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
DESCRIPTION_LIMIT = 2000

# Keywords whose value is a map of name → schema, a list of schemas, or one schema.
_MAP_KEYWORDS = {"properties", "patternProperties", "dependentSchemas"}
_LIST_KEYWORDS = {"allOf", "anyOf", "oneOf", "prefixItems"}
_ONE_KEYWORDS = {
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "additionalItems",
    "contentSchema",
}
# Dropped: documentation for humans or other tools, and keywords that would point
# outside the tool's schema (nested $defs are reached through their pointers instead).
_DROPPED_KEYWORDS = {
    "xml",
    "externalDocs",
    "discriminator",
    "$id",
    "$schema",
    "$anchor",
    "$dynamicAnchor",
    "$dynamicRef",
    "$comment",
    "$defs",
    "definitions",
    "nullable",
}
# One validator of the 2020-12 metaschema, reused: building one per check costs more.
_META_VALIDATOR = Draft202012Validator(
    Draft202012Validator.META_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER
)
_FORM_MEDIA = ("application/x-www-form-urlencoded", "multipart/form-data")

Progress = Callable[[str], None]


class SpecError(ValueError):
    """The spec cannot be imported. ``file`` and ``pointer`` (a JSON pointer) say where."""

    def __init__(self, message: str, *, file: str = "", pointer: str | None = None) -> None:
        self.file = file
        self.pointer = pointer
        self.problem = message
        where = file or "spec"
        if pointer is not None:
            where += f" at {pointer or '/'}"
        super().__init__(f"{where}: {message}")


@dataclass
class ToolDraft:
    name: str
    description: str
    parameters: dict[str, Any]
    config: dict[str, Any]


@dataclass
class ParsedSpec:
    """What one spec yields: its title, default server URL and one draft per operation."""

    title: str
    base_url: str
    tools: list[ToolDraft] = field(default_factory=list)


def pointer_escape(segment: str) -> str:
    return str(segment).replace("~", "~0").replace("/", "~1")


def _pointer(*segments: Any) -> str:
    return "".join("/" + pointer_escape(s) for s in segments)


# --- reading -------------------------------------------------------------------------


def spec_read(*, location: str, max_bytes: int, timeout: float = 30.0) -> bytes:
    """The bytes of a spec at a path or an http(s)/file URL on this machine."""
    scheme = urlsplit(location).scheme.lower()
    if scheme in ("http", "https"):
        import httpx

        try:
            with httpx.stream("GET", location, timeout=timeout, follow_redirects=True) as resp:
                if resp.status_code >= 400:
                    raise SpecError(f"fetching it answered HTTP {resp.status_code}", file=location)
                chunks, size = [], 0
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise SpecError(f"larger than the {max_bytes} byte limit", file=location)
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as exc:
            raise SpecError(f"cannot be fetched: {exc}", file=location) from exc
    path = Path(unquote(urlsplit(location).path) if scheme == "file" else location)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SpecError(f"cannot be read: {exc.strerror or exc}", file=location) from exc
    if size > max_bytes:
        raise SpecError(f"larger than the {max_bytes} byte limit ({size} bytes)", file=location)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SpecError(f"cannot be read: {exc.strerror or exc}", file=location) from exc


def spec_parse(*, data: bytes | str, file: str) -> dict[str, Any]:
    """Decode JSON, else YAML, into the spec's top-level object."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SpecError(f"is not UTF-8 text ({exc.reason})", file=file) from exc
    if not data.strip():
        raise SpecError("is empty", file=file)
    try:
        spec = json.loads(data)
    except json.JSONDecodeError as json_error:
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            spec = yaml.load(data, Loader=loader)  # noqa: S506 - a safe loader
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
            first = data.lstrip()[:1]
            if first in "{[":
                raise SpecError(
                    f"is not valid JSON ({json_error.msg} at line {json_error.lineno} "
                    f"column {json_error.colno})",
                    file=file,
                ) from exc
            raise SpecError(
                f"is neither JSON nor valid YAML{at}: {getattr(exc, 'problem', exc)}", file=file
            ) from exc
    if not isinstance(spec, dict):
        raise SpecError(
            f"must be an object at the top, not {type(spec).__name__}", file=file, pointer=""
        )
    return spec


def spec_check(*, spec: dict[str, Any], file: str) -> str:
    """Raise SpecError unless this is an OpenAPI 3.0/3.1 document with ``paths``.
    Returns the version ("3.0" or "3.1")."""
    if "swagger" in spec:
        raise SpecError(
            f"is Swagger {spec.get('swagger')}; only OpenAPI 3.0 and 3.1 are supported "
            "(convert it first, e.g. with `npx swagger2openapi`)",
            file=file,
            pointer="/swagger",
        )
    version = spec.get("openapi")
    if not isinstance(version, str):
        raise SpecError(
            "has no 'openapi' version field: not an OpenAPI 3 document", file=file, pointer=""
        )
    match = re.match(r"^3\.([01])(\.|$)", version)
    if not match:
        raise SpecError(
            f"OpenAPI {version!r} is not supported (3.0 and 3.1 are)",
            file=file,
            pointer="/openapi",
        )
    paths = spec.get("paths")
    if paths is None and match.group(1) == "1":
        paths = {}  # 3.1 allows a document of webhooks/components only
    if not isinstance(paths, dict):
        raise SpecError("'paths' must be an object", file=file, pointer="/paths")
    return f"3.{match.group(1)}"


def spec_base_url(*, spec: dict[str, Any], location: str = "") -> str:
    """The first server's URL with its variables at their defaults, made absolute against
    the spec's own URL when it is relative and the spec came from a URL."""
    servers = spec.get("servers")
    return _server_url(servers, location=location)


def _server_url(servers: Any, *, location: str = "") -> str:
    if not isinstance(servers, list) or not servers or not isinstance(servers[0], dict):
        return ""
    server = servers[0]
    url = str(server.get("url") or "")
    for var, spec in (server.get("variables") or {}).items():
        if isinstance(spec, dict) and "default" in spec:
            url = url.replace("{" + str(var) + "}", str(spec["default"]))
    if url and not urlsplit(url).scheme and urlsplit(location).scheme in ("http", "https"):
        url = urljoin(location, url)
    return url


# --- names ---------------------------------------------------------------------------


def name_fit(raw: str) -> str:
    """Make ``raw`` fit ``^[a-zA-Z0-9_-]{1,64}$``."""
    name = re.sub(r"[^a-zA-Z0-9_-]+", "_", raw).strip("_") or "operation"
    if len(name) > 64:
        digest = hashlib.sha1(raw.encode()).hexdigest()[:8]
        name = name[:55].rstrip("_") + "_" + digest
    return name


def name_unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        suffix = f"_{n}"
        candidate = name[: 64 - len(suffix)] + suffix
    taken.add(candidate)
    return candidate


# --- references and schemas ----------------------------------------------------------


class _Document:
    """The parsed spec with JSON-pointer lookup and ``$ref`` following."""

    def __init__(self, spec: dict[str, Any], file: str) -> None:
        self.spec = spec
        self.file = file

    def ref_pointer(self, ref: Any, *, at: str) -> str:
        if not isinstance(ref, str):
            raise SpecError("$ref must be a string", file=self.file, pointer=at)
        if not ref.startswith("#"):
            raise SpecError(
                f"$ref {ref!r} points outside this file; only local references (#/…) are supported",
                file=self.file,
                pointer=at,
            )
        return unquote(ref[1:])

    def lookup(self, pointer: str, *, at: str) -> Any:
        node: Any = self.spec
        if pointer in ("", "/"):
            return node
        if not pointer.startswith("/"):
            raise SpecError(f"$ref '#{pointer}' is not a JSON pointer", file=self.file, pointer=at)
        for raw in pointer[1:].split("/"):
            key = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                raise SpecError(f"$ref '#{pointer}' points to nothing", file=self.file, pointer=at)
        return node

    def deref(self, node: Any, pointer: str) -> tuple[Any, str]:
        """Follow ``$ref``s of a non-schema object (parameter, request body, path item)."""
        seen = set()
        while isinstance(node, dict) and "$ref" in node:
            target = self.ref_pointer(node["$ref"], at=pointer + "/$ref")
            if target in seen:
                raise SpecError("$ref cycle", file=self.file, pointer=pointer)
            seen.add(target)
            node, pointer = self.lookup(target, at=pointer + "/$ref"), target
        return node, pointer


def _python_pattern(pattern: str) -> str | None:
    """An ECMAScript pattern as Python ``re`` reads it, or None when it cannot."""
    for candidate in (pattern, re.sub(r"\(\?<([A-Za-z_]\w*)>", r"(?P<\1>", pattern)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "possible nested set" in ECMA classes
                re.compile(candidate)
        except (re.error, OverflowError):
            continue
        return candidate
    return None


class SchemaBundler:
    """Converts the spec's schemas to JSON Schema 2020-12, each referenced schema once,
    and hands each tool the ``$defs`` it needs (the closure of its references)."""

    def __init__(self, document: _Document, version: str) -> None:
        self.doc = document
        self.version = version
        self.names: dict[str, str] = {}  # pointer → $defs key
        self.defs: dict[str, Any] = {}  # pointer → converted schema
        self.deps: dict[str, set[str]] = {}  # pointer → pointers it references
        self._taken: set[str] = set()
        self._pending: list[str] = []
        self._checked: set[str] = set()
        self._valid_properties: set[str] = set()

    def convert(self, schema: Any, pointer: str) -> tuple[Any, set[str]]:
        """Convert a schema found at ``pointer``; returns it and the pointers it refers to."""
        refs: set[str] = set()
        out = self._walk(schema, pointer, refs)
        while self._pending:
            target = self._pending.pop()
            inner: set[str] = set()
            self.defs[target] = self._walk(self.doc.lookup(target, at=target), target, inner)
            self.deps[target] = inner
        return out, refs

    def defs_for(self, refs: Iterable[str]) -> dict[str, Any]:
        """The ``$defs`` a schema referring to ``refs`` needs, each checked once."""
        closure: list[str] = []
        seen: set[str] = set()
        stack = list(refs)
        while stack:
            ptr = stack.pop()
            if ptr in seen:
                continue
            seen.add(ptr)
            closure.append(ptr)
            stack.extend(self.deps.get(ptr, ()))
        for ptr in closure:
            if ptr not in self._checked:
                self.check(self.defs[ptr], ptr)
                self._checked.add(ptr)
        return {self.names[ptr]: self.defs[ptr] for ptr in sorted(closure, key=self.names.get)}

    def check(self, schema: Any, pointer: str) -> None:
        """Raise SpecError unless ``schema`` is valid JSON Schema (2020-12)."""
        if not _META_VALIDATOR.is_valid(schema):
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                where = pointer + "".join("/" + pointer_escape(p) for p in exc.path)
                raise SpecError(
                    f"schema is not valid JSON Schema: {exc.message}",
                    file=self.doc.file,
                    pointer=where,
                ) from exc

    def check_tool(self, parameters: dict[str, Any], pointer: str, origins: dict[str, str]) -> None:
        """Check a tool's schema but its ``$defs`` (each checked once by defs_for). The
        metaschema checks each property on its own, so a property schema seen before in
        this spec (the same ``expand`` or ``limit`` in every operation) is not checked
        again: metaschema validation is by far the slowest part of an import."""
        for name, prop in parameters.get("properties", {}).items():
            key = json.dumps(prop, sort_keys=True, default=str)
            if key not in self._valid_properties:
                self.check(prop, origins.get(name, pointer))
                self._valid_properties.add(key)
        self.check({**parameters, "properties": {}, "$defs": {}}, pointer)

    def _define(self, target: str) -> str:
        if target not in self.names:
            base = target.rsplit("/", 1)[-1].replace("~1", "/").replace("~0", "~")
            key = re.sub(r"[^A-Za-z0-9_.-]+", "_", base).strip("_") or "schema"
            key = name_unique(key[:100], self._taken)
            self.names[target] = key
            self._pending.append(target)
        return self.names[target]

    def _walk(self, node: Any, pointer: str, refs: set[str]) -> Any:
        if isinstance(node, bool):
            return node
        if not isinstance(node, dict):
            raise SpecError(
                f"a schema must be an object, not {type(node).__name__}",
                file=self.doc.file,
                pointer=pointer,
            )
        if "$ref" in node:
            target = self.doc.ref_pointer(node["$ref"], at=pointer + "/$ref")
            self.doc.lookup(target, at=pointer + "/$ref")
            refs.add(target)
            out: dict[str, Any] = {"$ref": "#/$defs/" + pointer_escape(self._define(target))}
            if self.version == "3.0":
                return out  # siblings of $ref are ignored in 3.0
            node = {k: v for k, v in node.items() if k != "$ref"}
        else:
            out = {}
        notes = []
        for key, value in node.items():
            if key.startswith("x-") or key in _DROPPED_KEYWORDS:
                continue
            at = pointer + "/" + pointer_escape(key)
            if key in _MAP_KEYWORDS and isinstance(value, dict):
                out[key] = {
                    k: self._walk(v, at + "/" + pointer_escape(k), refs) for k, v in value.items()
                }
            elif key in _LIST_KEYWORDS and isinstance(value, list):
                out[key] = [self._walk(v, f"{at}/{i}", refs) for i, v in enumerate(value)]
            elif key == "items" and isinstance(value, list):  # draft-4 tuple form
                out["prefixItems"] = [self._walk(v, f"{at}/{i}", refs) for i, v in enumerate(value)]
            elif key in _ONE_KEYWORDS:
                out[key] = self._walk(value, at, refs)
            elif key == "pattern" and isinstance(value, str):
                fixed = _python_pattern(value)
                if fixed is None:
                    notes.append(f"pattern: {value}")
                else:
                    out[key] = fixed
            elif key == "required" and not isinstance(value, list):
                continue  # a 2.0-era `required: true` on a property means nothing here
            else:
                out[key] = value
        if self.version == "3.0":
            self._from_openapi_30(node, out)
        if notes:
            out["description"] = " ".join([str(out.get("description") or ""), *notes]).strip()
        return out

    @staticmethod
    def _from_openapi_30(node: dict[str, Any], out: dict[str, Any]) -> None:
        if out.get("type") == "file":
            out["type"], out["format"] = "string", "binary"
        for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            flag = out.get(bound)
            if isinstance(flag, bool):
                if flag and limit in out:
                    out[bound] = out.pop(limit)
                else:
                    out.pop(bound)
        if node.get("nullable") is True:
            kind = out.get("type")
            if isinstance(kind, str):
                out["type"] = [kind, "null"]
            elif isinstance(kind, list) and "null" not in kind:
                out["type"] = [*kind, "null"]
            if isinstance(out.get("enum"), list) and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]


# --- operations ----------------------------------------------------------------------


def _description(op: dict[str, Any], method: str, path: str) -> str:
    parts = [str(op.get(k) or "").strip() for k in ("summary", "description")]
    text = "\n\n".join(dict.fromkeys(p for p in parts if p)) or f"{method.upper()} {path}"
    if op.get("deprecated") is True:
        text = "(Deprecated) " + text
    return text if len(text) <= DESCRIPTION_LIMIT else text[: DESCRIPTION_LIMIT - 1] + "…"


def _is_plain_object(schema: Any) -> bool:
    """A body whose properties can sit beside the parameters without changing its meaning."""
    return (
        isinstance(schema, dict)
        and isinstance(schema.get("properties"), dict)
        and schema.get("type", "object") in ("object", ["object"])
        and schema.get("additionalProperties", False) is False
        and not any(
            k in schema
            for k in ("$ref", "allOf", "anyOf", "oneOf", "not", "if", "patternProperties")
        )
    )


class _Operations:
    def __init__(self, spec: dict[str, Any], file: str, version: str) -> None:
        self.doc = _Document(spec, file)
        self.file = file
        self.schemas = SchemaBundler(self.doc, version)
        self.taken: set[str] = set()

    def error(self, message: str, pointer: str) -> SpecError:
        return SpecError(message, file=self.file, pointer=pointer)

    def operations(self) -> Iterable[tuple[str, str, dict[str, Any], str, dict[str, Any], str]]:
        paths = self.doc.spec.get("paths") or {}
        for path, raw_item in paths.items():
            if isinstance(path, str) and path.startswith("x-"):
                continue  # an extension of the Paths object
            item_ptr = _pointer("paths", path)
            if not isinstance(path, str) or not path.startswith("/"):
                raise self.error(f"path {path!r} must start with '/'", item_ptr)
            item, resolved_ptr = self.doc.deref(raw_item, item_ptr)
            if not isinstance(item, dict):
                raise self.error("a path item must be an object", item_ptr)
            for method, op in item.items():
                if method not in METHODS:
                    continue
                op_ptr = resolved_ptr + "/" + method
                if not isinstance(op, dict):
                    raise self.error("an operation must be an object", op_ptr)
                yield path, method, item, resolved_ptr, op, op_ptr

    def count(self) -> int:
        return sum(1 for _ in self.operations())

    def tool(
        self,
        path: str,
        method: str,
        item: dict[str, Any],
        item_ptr: str,
        op: dict[str, Any],
        op_ptr: str,
    ) -> ToolDraft:
        raw_name = op.get("operationId")
        if isinstance(raw_name, str) and raw_name.strip():
            name = name_fit(raw_name)
        else:
            name = name_fit(f"{method}{path}")
        name = name_unique(name, self.taken)

        properties: dict[str, Any] = {}
        self._origins: dict[str, str] = {}  # property → where its schema is in the spec
        required: list[str] = []
        refs: set[str] = set()
        params_config = []
        for param, param_ptr in self._parameters(item, item_ptr, op, op_ptr):
            where = param["in"]
            if where == "cookie":
                continue
            prop = param["name"]
            if prop in properties:
                prop = f"{where}_{prop}"
            if prop in properties:
                raise self.error(f"parameter {param['name']!r} is declared twice", param_ptr)
            schema, serialize = self._parameter_schema(param, param_ptr, refs)
            if param.get("description") and isinstance(schema, dict):
                # The parameter's own description says more than its type's.
                schema = {**schema, "description": str(param["description"])}
            properties[prop] = schema
            self._origins[prop] = param_ptr + ("/schema" if "schema" in param else "")
            if where == "path" or param.get("required") is True:
                required.append(prop)
            entry = {"name": param["name"], "in": where, "prop": prop}
            for key in ("style", "explode"):
                if key in param:
                    entry[key] = param[key]
            if serialize:
                entry["serialize"] = serialize
            params_config.append(entry)

        body_config = self._body(op, op_ptr, properties, required, refs)
        parameters: dict[str, Any] = {
            "type": "object",
            "properties": properties,
            "additionalProperties": False,
        }
        if required:
            parameters["required"] = required
        defs = self.schemas.defs_for(refs)
        if defs:
            parameters["$defs"] = defs
        self.schemas.check_tool(parameters, op_ptr, self._origins)
        config: dict[str, Any] = {
            "method": method.upper(),
            "path": path,
            "params": params_config,
            "body": body_config,
            "pointer": op_ptr,
        }
        server = _server_url(op.get("servers")) or _server_url(item.get("servers"))
        if server:
            config["server"] = server
        return ToolDraft(
            name=name,
            description=_description(op, method, path),
            parameters=parameters,
            config=config,
        )

    def _parameters(
        self, item: dict[str, Any], item_ptr: str, op: dict[str, Any], op_ptr: str
    ) -> list[tuple[dict[str, Any], str]]:
        merged: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
        for owner, owner_ptr in ((item, item_ptr), (op, op_ptr)):
            raw = owner.get("parameters")
            if raw is None:
                continue
            list_ptr = owner_ptr + "/parameters"
            if not isinstance(raw, list):
                raise self.error("'parameters' must be a list", list_ptr)
            for i, entry in enumerate(raw):
                param, ptr = self.doc.deref(entry, f"{list_ptr}/{i}")
                if not isinstance(param, dict):
                    raise self.error("a parameter must be an object", ptr)
                if not isinstance(param.get("name"), str) or not param["name"]:
                    raise self.error("a parameter needs a 'name'", ptr)
                if param.get("in") not in PARAM_LOCATIONS:
                    raise self.error(
                        f"parameter {param['name']!r} has 'in': {param.get('in')!r}; "
                        f"expected one of {', '.join(PARAM_LOCATIONS)}",
                        ptr,
                    )
                merged[(param["name"], param["in"])] = (param, ptr)
        return list(merged.values())

    def _parameter_schema(
        self, param: dict[str, Any], ptr: str, refs: set[str]
    ) -> tuple[Any, str | None]:
        if "schema" in param:
            schema, found = self.schemas.convert(param["schema"], ptr + "/schema")
            refs |= found
            return schema, None
        content = param.get("content")
        if isinstance(content, dict) and content:
            media, media_obj = next(iter(content.items()))
            if isinstance(media_obj, dict) and "schema" in media_obj:
                at = ptr + "/content/" + pointer_escape(media) + "/schema"
                schema, found = self.schemas.convert(media_obj["schema"], at)
                refs |= found
                return schema, "json" if "json" in media else None
        return {}, None

    def _body(
        self,
        op: dict[str, Any],
        op_ptr: str,
        properties: dict[str, Any],
        required: list[str],
        refs: set[str],
    ) -> dict[str, Any] | None:
        if "requestBody" not in op:
            return None
        body, body_ptr = self.doc.deref(op["requestBody"], op_ptr + "/requestBody")
        if not isinstance(body, dict):
            raise self.error("'requestBody' must be an object", body_ptr)
        content = body.get("content")
        if not isinstance(content, dict) or not content:
            return None
        media = _pick_media(list(content))
        media_obj = content[media] if isinstance(content[media], dict) else {}
        at = body_ptr + "/content/" + pointer_escape(media) + "/schema"
        is_json = _is_json(media)
        found: set[str] = set()
        if "schema" in media_obj and (is_json or media in _FORM_MEDIA):
            schema, found = self.schemas.convert(media_obj["schema"], at)
        else:
            schema = {"type": "string", "description": f"The request body ({media})."}
        body_required = body.get("required") is True
        resolved, merged_refs, resolved_ptr = schema, found, at
        if isinstance(schema, dict) and set(schema) == {"$ref"}:
            target = self.doc.ref_pointer(media_obj["schema"]["$ref"], at=at + "/$ref")
            # Merged, the body's own $defs entry is only needed if it refers to itself.
            resolved, merged_refs = self.schemas.defs.get(target), self.schemas.deps[target]
            resolved_ptr = target
        if (
            (is_json or media in _FORM_MEDIA)
            and _is_plain_object(resolved)
            and not set(resolved["properties"]) & set(properties)
        ):
            refs |= merged_refs
            names = list(resolved["properties"])
            for name in names:
                self._origins[name] = resolved_ptr + "/properties/" + pointer_escape(name)
            properties.update(resolved["properties"])
            required.extend(r for r in resolved.get("required") or [] if r in names)
            return {"media": media, "mode": "merged", "props": names}
        refs |= found
        prop = "body" if "body" not in properties else "request_body"
        if prop in properties:
            raise self.error("no free property name for the request body", body_ptr)
        if body.get("description") and isinstance(schema, dict):
            schema = {**schema, "description": str(body["description"])}
        properties[prop] = schema
        self._origins[prop] = at
        if body_required:
            required.append(prop)
        return {"media": media, "mode": "property", "prop": prop}


def _is_json(media: str) -> bool:
    base = media.split(";")[0].strip().lower()
    return base == "application/json" or base.endswith("+json") or base == "*/*"


def _pick_media(medias: list[str]) -> str:
    for test in (
        lambda m: m.split(";")[0].strip().lower() == "application/json",
        _is_json,
        lambda m: m in _FORM_MEDIA,
    ):
        for media in medias:
            if test(media):
                return media
    return medias[0]


def spec_tools(
    *,
    spec: dict[str, Any],
    file: str,
    max_operations: int | None = None,
    progress: Progress | None = None,
) -> ParsedSpec:
    """Check the spec and build one ToolDraft per operation. Raises SpecError."""
    version = spec_check(spec=spec, file=file)
    ops = _Operations(spec, file, version)
    total = ops.count()
    if max_operations is not None and total > max_operations:
        raise SpecError(
            f"has {total} operations, more than the limit of {max_operations} "
            "(TOOLTRAIL_OPENAPI_MAX_OPERATIONS)",
            file=file,
            pointer="/paths",
        )
    info = spec.get("info") if isinstance(spec.get("info"), dict) else {}
    parsed = ParsedSpec(title=str(info.get("title") or ""), base_url=spec_base_url(spec=spec))
    step = max(500, total // 10)
    for i, operation in enumerate(ops.operations(), 1):
        parsed.tools.append(ops.tool(*operation))
        if progress and (i % step == 0 or i == total):
            progress(f"converted {i}/{total} operations")
    return parsed
