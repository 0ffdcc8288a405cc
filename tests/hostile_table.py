"""The table of hostile inputs: every route of the URL configuration (so new ones are
covered) with hostile path segments, query strings and bodies, and the websocket paths
and query strings. Used by the suite (``tests/tooltrail/test_hostile_input.py``, through
Django's test client) and by ``bench/hostile_stack.py`` (over the network, against a
stack started the way ``make up`` starts it)."""

from __future__ import annotations

import uuid

from django.urls import URLPattern, URLResolver, get_resolver


def routes() -> list[tuple[str, dict]]:
    """(route, converters) of every URL pattern but Django's own admin."""
    found = []

    def walk(resolver: URLResolver, prefix: str) -> None:
        for entry in resolver.url_patterns:
            if isinstance(entry, URLResolver):
                if "admin" not in str(entry.pattern):
                    walk(entry, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern):
                found.append((prefix + str(entry.pattern), entry.pattern.converters))

    walk(get_resolver(), "/")
    return found


# What each kind of path segment is given: something real-looking, then hostile values.
SEGMENTS = {
    "uuid": ["{trace}", str(uuid.UUID(int=0))],
    "int": ["1", "0", "99999999999999999999999"],
    "slug": ["demo", "no-such-thing", "x" * 300],
    "str": ["calculator", "output", "%C3%BC%FF", "a" * 300],
}
SEGMENTS["uuidstr"] = SEGMENTS["uuid"]  # django-ninja's converter for {uuid:...}
QUERIES = [
    "?step=%C2%B2",  # ² is a digit to str.isdigit, not to int()
    "?step=%D9%A3&after=%C2%B2&limit=%C2%B2",
    "?after=-1&limit=0",
    "?after=99999999999999999999999999&limit=99999999999999999999",
    "?page=%FF%FE&status=%3Cscript%3E&agent=%FF",
    "?status=%00&page=-1",
    "?format=json&after=1e9&ids=" + "x," * 2000,
]
NESTED = "[" * 100_000 + "]" * 100_000
# Bodies over the size limit are refused by one middleware for every path, before any
# view: tested once below rather than on every route.
BODIES = [
    ("application/json", NESTED),
    ("application/json", '{"agent": 5, "input": []}'),
    ("application/json", '{"agent": "demo", "input": {"a": 1}}'),
    ("application/json", '"just a string"'),
    ("application/json", "{not json"),
    ("application/json", '{"agent": "demo", "input": "\\u0000"}'),
    ("application/json", '{"agent": "de\\u0000mo", "input": "x"}'),
    ("application/octet-stream", b"\xff\xfe\x00\x01"),
    ("application/x-www-form-urlencoded", "input=%00&name=%00"),
    ("application/x-www-form-urlencoded", "expires_in_days=%C2%B2&name=" + "y" * 500),
]


def paths_for(route: str, converters: dict, trace: str) -> list[str]:
    """The route with each parameter given each of its values in turn (the others at
    their first, real-looking value)."""
    names = list(converters)
    kinds = {
        name: {"string": "str"}.get(kind, kind)
        for name, conv in converters.items()
        for kind in [type(conv).__name__.removesuffix("Converter").lower()]
    }

    def fill(choice: dict[str, str]) -> str:
        path = route
        for name in names:
            path = path.replace(f"<{kinds[name]}:{name}>", choice[name])
        return path.replace("{trace}", trace)

    first = {name: SEGMENTS[kinds[name]][0] for name in names}
    paths = [fill(first)]
    for name in names:
        for value in SEGMENTS[kinds[name]][1:]:
            paths.append(fill({**first, name: value}))
    return paths


WS_PATHS = [
    "/ws/traces/{trace}/",
    "/ws/traces/",
    f"/ws/traces/{uuid.UUID(int=0)}/",
    "/ws/traces/not-a-uuid/",
    "/ws/nothing-here/",
]
WS_QUERIES = [
    b"",
    b"after=%FF%FE\xff\xfe&format=json",
    b"after=-5",
    b"after=999999999999999999999999999999",
    b"after=%C2%B2&format=%00",
    b"page=%FF&status=\xc3\x28&agent=" + b"a" * 10_000,
]
