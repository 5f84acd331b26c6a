"""Regular expressions and JSON Schemas that a user types (GRPO's `format` and `json_valid` rewards): checked at
the field for shapes that cannot finish, and run under a time bound that cannot hold the server.

Python's `re` holds the GIL for as long as a match takes, so one backtracking pattern (`(a|aa)+$`) freezes every
thread of the server. The `regex` package (a dependency of transformers, so nothing new is installed) matches the
same syntax, takes a `timeout` and, with `concurrent=True`, releases the GIL while it works; a match that runs out
of time scores 0 and is counted (`TIMEOUTS`), never retried.

A schema is validated with a registry that holds the schema alone: no `$ref` reaches a URL or a file, and a `$ref`
that leads back into itself or a schema nested deeper than MAX_SCHEMA_DEPTH is refused at the field with the
studio's own message. No torch, no gradio.
"""

from __future__ import annotations

import collections
import re
import threading
from functools import lru_cache

MATCH_TIMEOUT_S = 0.25  # one answer against one pattern: far beyond any sane pattern, short enough to go unnoticed
MAX_SCHEMA_DEPTH = 32  # nesting of a schema: real ones rarely pass 6
TIMEOUTS: collections.Counter = collections.Counter()  # reward name -> matches abandoned for time, this process
_TIMEOUTS_LOCK = threading.Lock()


# ---------------------------------------------------------------- regular expressions

def _repeats(tree) -> list:
    """Every repeat node (min, max, body) in an `re` parse tree, outermost first."""
    from re import _constants as c  # the parser's own node names

    found = []
    for op, value in tree:
        if op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
            found.append(value)
            found += _repeats(value[2])
        elif op == c.SUBPATTERN:
            found += _repeats(value[-1])
        elif op == c.BRANCH:
            for branch in value[1]:
                found += _repeats(branch)
        elif op in (c.ASSERT, c.ASSERT_NOT):
            found += _repeats(value[1])
    return found


def nested_quantifier(pattern: str, flags: int = 0) -> bool:
    """True for the classic catastrophic shape: a repeated group that itself holds an open-ended repeat, as in
    `(.+)+`, `(a*)*`, `(\\w+\\s?)+`. Patterns that do not parse are the compiler's to name."""
    from re import _constants as c, _parser

    try:
        tree = _parser.parse(pattern, flags)
    except re.error:
        return False
    for low, high, body in _repeats(tree):
        if high != 1 and any(inner_high == c.MAXREPEAT for _, inner_high, _ in _repeats(body)):
            return True
    return False


@lru_cache(maxsize=64)
def compiled(pattern: str, flags: int = 0):
    import regex  # deferred: only a user's pattern needs it

    return regex.compile(pattern, flags)


def bounded_match(pattern: str, text: str, flags: int = 0, whole: bool = True, counted_as: str = "format",
                  timeout: float = MATCH_TIMEOUT_S) -> bool:
    """Whether `pattern` matches `text` (the whole of it, or anywhere), giving up after `timeout` seconds with
    False; every give-up is counted under `counted_as`."""
    compiled_pattern = compiled(pattern, flags)
    match = compiled_pattern.fullmatch if whole else compiled_pattern.search
    try:
        return match(text, timeout=timeout, concurrent=True) is not None
    except TimeoutError:
        with _TIMEOUTS_LOCK:
            TIMEOUTS[counted_as] += 1
        return False


def timeouts_since(before: dict) -> dict[str, int]:
    """Give-ups counted since a copy of TIMEOUTS was taken: what one batch of rewards met."""
    with _TIMEOUTS_LOCK:
        return {name: count - before.get(name, 0) for name, count in TIMEOUTS.items() if count > before.get(name, 0)}


def timeouts_now() -> dict[str, int]:
    with _TIMEOUTS_LOCK:
        return dict(TIMEOUTS)


# ---------------------------------------------------------------- JSON Schemas

def _pointer(schema, ref: str):
    """The part of `schema` a local `$ref` ('#', '#/properties/a', '#/$defs/x') names; None where it names none."""
    node = schema
    for part in ref.removeprefix("#").split("/")[1:] if ref != "#" else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _walk(node, path: str, depth: int):
    """(path, node, depth) for every schema object below `node`."""
    if isinstance(node, dict):
        yield path, node, depth
        for key, value in node.items():
            if key in ("enum", "const", "examples", "default"):  # values, not schemas
                continue
            yield from _walk(value, f"{path}.{key}", depth + 1)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]", depth + 1)


IN_PLACE = ("allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas")  # same instance, no descent


def _in_place_refs(node) -> list[str]:
    """The local `$ref`s that apply to the same instance as `node` (not to a property or an item of it)."""
    if not isinstance(node, dict):
        return []
    refs = [node["$ref"]] if isinstance(node.get("$ref"), str) and node["$ref"].startswith("#") else []
    for key in IN_PLACE:
        value = node.get(key)
        parts = value if isinstance(value, list) else list(value.values()) if key == "dependentSchemas" and \
            isinstance(value, dict) else [value]
        for part in parts:
            refs += _in_place_refs(part)
    return refs


def _leads_to_itself(schema, ref: str, seen: tuple = ()) -> bool:
    """A `$ref` whose references, applied to the same value, come back to it: validation would never end. (A
    tree's schema that refers to itself for each child is fine: each step goes one level into the value.)"""
    if ref in seen:
        return True
    return any(_leads_to_itself(schema, r, seen + (ref,)) for r in _in_place_refs(_pointer(schema, ref)))


def _short(path: str) -> str:
    return path if len(path) <= 80 else "…" + path[-79:]


def schema_shape_problem(schema) -> dict | None:
    """Why a parsed schema cannot be used safely ({"path": where, "why": what}), or None: a `$ref` that is not a
    part of this schema (a URL, a file), one that leads back into itself, nesting beyond MAX_SCHEMA_DEPTH, and a
    `pattern` of a catastrophic shape."""
    for path, node, depth in _walk(schema, "$", 0):
        if depth > MAX_SCHEMA_DEPTH:
            return {"path": _short(path), "why": "depth"}
        ref = node.get("$ref")
        if isinstance(ref, str):
            if not ref.startswith("#"):
                return {"path": _short(path), "why": "remote_ref"}
            if _pointer(schema, ref) is None:
                return {"path": _short(path), "why": "missing_ref"}
            if _leads_to_itself(schema, ref):
                return {"path": _short(path), "why": "recursive_ref"}
        pattern = node.get("pattern")
        if isinstance(pattern, str) and nested_quantifier(pattern):
            return {"path": _short(path), "why": "slow_pattern"}
        for key in node.get("patternProperties") or {}:
            if nested_quantifier(key):
                return {"path": _short(path), "why": "slow_pattern"}
    return None


def schema_validator(schema):
    """A validator for `schema` whose references resolve only inside it (the registry holds the schema alone and
    retrieves nothing) and whose `pattern` / `patternProperties` run under the time bound."""
    import jsonschema
    from referencing import Registry
    from referencing.exceptions import NoSuchResource

    def refuse(uri: str):
        raise NoSuchResource(ref=uri)

    base = jsonschema.validators.validator_for(schema)

    def pattern(validator, value, instance, _schema):
        if validator.is_type(instance, "string") and not bounded_match(value, instance, whole=False,
                                                                        counted_as="json_valid"):
            yield jsonschema.ValidationError(f"{instance!r} does not match {value!r}")

    def pattern_properties(validator, value, instance, _schema):
        if not validator.is_type(instance, "object"):
            return
        for key, subschema in value.items():
            for name, item in instance.items():
                if bounded_match(key, name, whole=False, counted_as="json_valid"):
                    yield from validator.descend(item, subschema, path=name, schema_path=key)

    checker = jsonschema.validators.extend(base, {"pattern": pattern, "patternProperties": pattern_properties})
    return checker(schema, registry=Registry(retrieve=refuse))
