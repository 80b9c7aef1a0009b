"""Personalized text: Jinja2 templates in its sandbox, checked once and rendered per
recipient with bounded output.

A template reads `profile.<property>` and `event.<property>` (the triggering event of a
live campaign) and nothing else: no attribute of a Python object, no name outside those
namespaces. Campaign checks each template when a campaign is stored (`check`), delivery
renders a payload's templates per recipient (`PayloadTemplate`). What a missing value
becomes is the campaign's choice (`MissingValues`): a text, or the recipient is refused.
The kit knows no service: the namespaces and the payload's shape are passed in.
"""

from __future__ import annotations

import functools
import json
import math
import operator
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jinja2
import jinja2.meta
from jinja2 import nodes
from jinja2.sandbox import SandboxedEnvironment, SecurityError

NAMESPACES = ("profile", "event")
# No rendered string may grow past this (a push message holds under 4 KB anyway); a
# template that tries ends refused rather than using the memory.
MAX_OUTPUT_CHARS = 8192
_TEMPLATE_MARKS = ("{{", "{%", "{#")


class TemplateProblem(ValueError):
    """A template that cannot be stored: its syntax, or a name it may not read."""

    def __init__(self, reason: str, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.reason = reason
        self.line = line
        self.column = column


class MissingValue(Exception):
    """The recipient has no value for a name the template prints without a fallback."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no value for {name}")
        self.name = name


class RenderRefused(Exception):
    """This recipient's rendering failed: a click URL that is not an absolute http(s)
    URL once rendered, or a value of a type the template cannot use."""


class UnsafeTemplate(RenderRefused):
    """Rendering went out of bounds whatever the values: an unsafe operation, or output
    too long."""


@dataclass(frozen=True)
class MissingValues:
    """What a missing value without its own fallback becomes: `text`, or (suppress) the
    recipient gets nothing (MissingValue)."""

    suppress: bool = False
    text: str = ""


@dataclass(frozen=True)
class Variables:
    """The properties a template reads, per namespace."""

    profile: frozenset[str] = frozenset()
    event: frozenset[str] = frozenset()

    def __or__(self, other: Variables) -> Variables:
        return Variables(self.profile | other.profile, self.event | other.event)


def is_template(text: str) -> bool:
    return any(mark in text for mark in _TEMPLATE_MARKS)


def add_query(url: str, params: Sequence[tuple[str, str]]) -> str:
    """`url` with `params` added to its query, keeping its other parameters, their order
    and its fragment; a parameter the URL already has keeps the URL's value."""
    if not params:
        return url
    parts = urlsplit(url)
    present = {name for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
    extra = urlencode([(k, v) for k, v in params if k not in present])
    if not extra:
        return url
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def click_url(url: str, query: str = "") -> str:
    """A rendered click URL, checked and given the campaign's query parameters (UTM)."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("https", "http")
        or not parts.hostname
        or any(c.isspace() or ord(c) < 0x20 for c in url)
    ):
        raise RenderRefused(f"the rendered click URL {url[:80]!r} is not an absolute http(s) URL")
    return add_query(url, parse_qsl(query, keep_blank_values=True))


def wrap_click_url(source: str, query: str) -> str:
    """A click-URL template whose rendering is checked by `click_url` and gets `query`."""
    return "{% filter click_url(" + json.dumps(query) + ") %}" + source + "{% endfilter %}"


class _Sandbox(SandboxedEnvironment):
    # `'x' * 10**9` would allocate before any output bound applies.
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "**":
            numbers = isinstance(left, (int, float)) and isinstance(right, (int, float))
            if numbers and (
                abs(right) > 64 or (abs(left) > 1 and abs(right) * math.log2(abs(left)) > 256)
            ):
                raise UnsafeTemplate("a power too large to compute")
            return operator.pow(left, right)
        size = (
            len(left)
            if isinstance(left, (str, list))
            else len(right)
            if isinstance(right, (str, list))
            else 0
        )
        times = right if isinstance(left, (str, list)) else left
        if size and isinstance(times, int) and size * times > MAX_OUTPUT_CHARS:
            raise UnsafeTemplate("a repetition longer than a push message can carry")
        return operator.mul(left, right)


@functools.lru_cache(maxsize=64)
def _environment(missing: MissingValues) -> jinja2.Environment:
    if missing.suppress:

        class Undefined(jinja2.Undefined):
            __slots__ = ()

            def __str__(self) -> str:
                raise MissingValue(self._undefined_name or "a value")

    else:
        text = missing.text

        class Undefined(jinja2.Undefined):  # type: ignore[no-redef]
            __slots__ = ()

            def __str__(self) -> str:
                return text

    environment = _Sandbox(undefined=Undefined, autoescape=False, keep_trailing_newline=True)
    environment.filters["click_url"] = click_url
    return environment


def check(source: str, namespaces: Collection[str] = NAMESPACES) -> Variables:
    """The properties `source` reads; TemplateProblem (with the 1-based line and column)
    if it does not parse, reads a name outside `namespaces`, or is unsafe."""
    environment = _environment(MissingValues())
    try:
        tree = environment.parse(source)
    except jinja2.TemplateSyntaxError as error:
        line = error.lineno or 1
        raise TemplateProblem(
            "INVALID_TEMPLATE", f"line {line}: {error.message}", line, 1
        ) from None
    used: dict[str, set[str]] = {name: set() for name in NAMESPACES}
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        if isinstance(target, nodes.Name) and target.name in NAMESPACES:
            name = node.attr if isinstance(node, nodes.Getattr) else _constant(node.arg)
            if name is None or name.startswith("_"):
                line = node.lineno
                raise TemplateProblem(
                    "UNKNOWN_VARIABLE",
                    f"line {line}: read a property by name, e.g. {target.name}.first_name "
                    f"or {target.name}['first name']",
                    line,
                    _column(source, line, target.name),
                )
            used[target.name].add(name)
    declared_free = jinja2.meta.find_undeclared_variables(tree)
    for name in sorted(declared_free):
        line, column = _position(source, name)
        if name not in namespaces:
            allowed = ", ".join(f"{n}.<property>" for n in namespaces)
            raise TemplateProblem(
                "UNKNOWN_VARIABLE",
                f"line {line}, column {column}: unknown variable {name!r}; a template may "
                f"read {allowed}",
                line,
                column,
            )
    for bare in tree.find_all(nodes.Name):
        if bare.name in NAMESPACES and bare.ctx == "load" and not _is_read_through(tree, bare):
            line = bare.lineno
            raise TemplateProblem(
                "UNKNOWN_VARIABLE",
                f"line {line}: {bare.name} alone is not a value; read one of its properties, "
                f"e.g. {bare.name}.first_name",
                line,
                _column(source, line, bare.name),
            )
    try:
        _render_bounded(environment.from_string(source), {n: {} for n in NAMESPACES})
    except UnsafeTemplate as error:
        raise TemplateProblem(
            "UNSAFE_TEMPLATE", f"the template is refused: {error}", 1, 1
        ) from None
    except (MissingValue, RenderRefused):
        pass  # depends on the values: no property has one here
    return Variables(frozenset(used["profile"]), frozenset(used["event"]))


def render(
    source: str, context: Mapping[str, Any], missing: MissingValues = MissingValues()
) -> str:
    """One template rendered; MissingValue or RenderRefused when it cannot be."""
    return _render_bounded(_compiled(source, missing), context)


class PayloadTemplate:
    """A JSON object whose string values may be templates (a push payload), compiled
    once and rendered per recipient to compact UTF-8 JSON."""

    def __init__(self, payload: bytes, missing: MissingValues) -> None:
        self._document = json.loads(payload)
        self._missing = missing
        self.templated = _has_template(self._document)

    def render(self, context: Mapping[str, Any]) -> bytes:
        document = self._fill(self._document, context) if self.templated else self._document
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()

    def _fill(self, value: Any, context: Mapping[str, Any]) -> Any:
        if isinstance(value, str):
            return render(value, context, self._missing) if is_template(value) else value
        if isinstance(value, list):
            return [self._fill(item, context) for item in value]
        if isinstance(value, dict):
            return {key: self._fill(item, context) for key, item in value.items()}
        return value


def property_value(value: Any) -> Any:
    """A stored property value as a template sees it: whole numbers without ".0",
    timestamps as ISO 8601."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@functools.lru_cache(maxsize=1024)
def _compiled(source: str, missing: MissingValues) -> jinja2.Template:
    return _environment(missing).from_string(source)


def _render_bounded(template: jinja2.Template, context: Mapping[str, Any]) -> str:
    parts: list[str] = []
    size = 0
    try:
        for part in template.generate(context):
            size += len(part)
            if size > MAX_OUTPUT_CHARS:
                raise UnsafeTemplate(
                    f"the rendered text is longer than {MAX_OUTPUT_CHARS} characters"
                )
            parts.append(part)
    except SecurityError as error:
        raise UnsafeTemplate(f"an unsafe operation: {error}") from None
    except (MissingValue, RenderRefused):
        raise
    except (TypeError, ValueError, ArithmeticError, LookupError, jinja2.TemplateError) as error:
        # A value of an unexpected type (e.g. a filter given a number): not renderable.
        raise RenderRefused(f"the template failed on this recipient's values: {error}") from None
    return "".join(parts)


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return is_template(value)
    if isinstance(value, list):
        return any(_has_template(item) for item in value)
    if isinstance(value, dict):
        return any(_has_template(item) for item in value.values())
    return False


def _constant(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        return node.value
    return None


def _is_read_through(tree: nodes.Template, name: nodes.Name) -> bool:
    return any(
        getattr(node, "node", None) is name
        for node in tree.find_all((nodes.Getattr, nodes.Getitem))
    )


def _position(source: str, name: str) -> tuple[int, int]:
    for number, line in enumerate(source.splitlines() or [""], start=1):
        column = line.find(name)
        if column >= 0:
            return number, column + 1
    return 1, 1


def _column(source: str, line: int, name: str) -> int:
    lines = source.splitlines()
    if 0 < line <= len(lines):
        found = lines[line - 1].find(name)
        if found >= 0:
            return found + 1
    return 1


__all__: list[str] = [
    "MAX_OUTPUT_CHARS",
    "NAMESPACES",
    "MissingValue",
    "MissingValues",
    "PayloadTemplate",
    "RenderRefused",
    "TemplateProblem",
    "UnsafeTemplate",
    "Variables",
    "add_query",
    "check",
    "click_url",
    "is_template",
    "property_value",
    "render",
    "wrap_click_url",
]
