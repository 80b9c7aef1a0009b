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
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence, Sized
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

import jinja2
import jinja2.meta
from jinja2 import nodes
from jinja2.sandbox import SandboxedEnvironment, SecurityError

NAMESPACES = ("profile", "event")
# No rendered string may grow past this (a push message holds under 4 KB anyway); a
# template that tries ends refused rather than using the memory.
MAX_OUTPUT_CHARS = 8192
# Loop iterations one rendering may take, all loops together (a property list holds at
# most 100 items, a string 1024 characters): without a bound, a loop printing nothing
# runs as long as it likes.
MAX_LOOP_ITERATIONS = 1024
_TEMPLATE_MARKS = ("{{", "{%", "{#")
# Statements a personalized text has no use for, refused because they would let a
# template run unbounded (macros recurse, assignments double a string at each step) or
# reach outside itself (imports, includes). Calls: a filter does what a method would.
_REFUSED_NODES: dict[type[nodes.Node], str] = {
    nodes.Call: "call a function or method (a filter does it, e.g. `| upper`)",
    nodes.Macro: "define macros",
    nodes.CallBlock: "use `call` blocks",
    nodes.Assign: "assign variables (`set`)",
    nodes.AssignBlock: "assign variables (`set`)",
    nodes.With: "use `with`",
    nodes.Include: "include templates",
    nodes.Import: "import templates",
    nodes.FromImport: "import templates",
    nodes.Extends: "extend templates",
    nodes.Block: "define blocks",
    nodes.EvalContextModifier: "use `autoescape`",
}
_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
# A printf conversion's width and precision ("%10.2f", "%*d").
_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_loop_budget: ContextVar[list[int]] = ContextVar("_loop_budget")


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
    return _with_query(url, urlsplit(url), tuple(params))


def _with_query(url: str, parts: SplitResult, params: tuple[tuple[str, str], ...]) -> str:
    if parts.query:
        present = {name for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
        extra = _encoded(tuple((k, v) for k, v in params if k not in present))
    else:
        extra = _encoded(params)
    if not extra:
        return url
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


@functools.lru_cache(maxsize=256)
def _encoded(params: tuple[tuple[str, str], ...]) -> str:
    return urlencode(params)


@functools.lru_cache(maxsize=256)
def _query_params(query: str) -> tuple[tuple[str, str], ...]:
    # A campaign's UTM query, parsed once rather than per recipient.
    return tuple(parse_qsl(query, keep_blank_values=True))


# Whitespace or a control character anywhere in a URL.
_URL_BREAKERS = re.compile(r"[\x00-\x20\x7f\s]")


def click_url(url: str, query: str = "") -> str:
    """A rendered click URL, checked and given the campaign's query parameters (UTM)."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if (
        parts is None
        or parts.scheme not in ("https", "http")
        or not host
        or _URL_BREAKERS.search(url) is not None
    ):
        raise RenderRefused(f"the rendered click URL {url[:80]!r} is not an absolute http(s) URL")
    params = _query_params(query)
    return _with_query(url, parts, params) if params else url


def wrap_click_url(source: str, query: str) -> str:
    """A click-URL template whose rendering is checked by `click_url` and gets `query`."""
    return "{% filter click_url(" + json.dumps(query) + ") %}" + source + "{% endfilter %}"


class _Sandbox(SandboxedEnvironment):
    # `'x' * 10**9` would allocate before any output bound applies.
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping):
            # A namespace's property, never a dict method: a property may be "items".
            return self._property(obj, attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, Mapping):
            return self._property(obj, argument)
        return super().getitem(obj, argument)

    def _property(self, properties: Mapping[Any, Any], name: Any) -> Any:
        try:
            return properties[name]
        except (KeyError, TypeError):
            return self.undefined(obj=properties, name=name)

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        # Refused outright: an Undefined would print as a missing value, hiding the try.
        raise SecurityError(f"access to attribute {attribute!r} of a {type(obj).__name__}")

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "+":
            return _bounded(operator.add(left, right))
        if operator_name == "%":
            if isinstance(left, str):
                _check_printf(left, right)
                return _bounded(operator.mod(left, right))
            return operator.mod(left, right)
        if operator_name == "**":
            numbers = isinstance(left, (int, float)) and isinstance(right, (int, float))
            if numbers and (
                abs(right) > 64 or (abs(left) > 1 and abs(right) * math.log2(abs(left)) > 256)
            ):
                raise UnsafeTemplate("a power too large to compute")
            return operator.pow(left, right)
        size = (
            len(left)
            if isinstance(left, (str, list, tuple))
            else len(right)
            if isinstance(right, (str, list, tuple))
            else 0
        )
        times = right if isinstance(left, (str, list, tuple)) else left
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
    # `check` refuses every name but the namespaces: no global (range, lipsum, cycler)
    # is needed, and none is there to reach through.
    environment.globals.clear()
    environment.filters["click_url"] = click_url
    environment.filters = {
        name: _bounded_filter(name, function) for name, function in environment.filters.items()
    }
    environment.filters[_LOOP_FILTER] = _bounded_loop
    return environment


def _bounded(value: Any) -> Any:
    if isinstance(value, (str, list, tuple, dict)) and len(value) > MAX_OUTPUT_CHARS:
        raise UnsafeTemplate(f"a value longer than {MAX_OUTPUT_CHARS} characters or items")
    return value


def _too_large(number: Any) -> bool:
    return isinstance(number, (int, float)) and abs(number) > MAX_OUTPUT_CHARS


def _check_printf(spec: str, values: Any) -> None:
    """Refuses a printf format whose widths would allocate more than any output holds."""
    for width, precision in _PRINTF_SPEC.findall(spec):
        for number in (width, precision):
            if number == "*":
                items = values if isinstance(values, tuple) else (values,)
                if any(_too_large(item) for item in items):
                    raise UnsafeTemplate("a format width too large")
            elif number and int(number) > MAX_OUTPUT_CHARS:
                raise UnsafeTemplate("a format width too large")


def _check_size_arguments(*args: Any, **kwargs: Any) -> None:
    if any(_too_large(value) for value in (*args[1:], *kwargs.values())):
        raise UnsafeTemplate("a size argument too large")


def _check_replace(s: Any, old: Any = "", new: Any = "", count: Any = None) -> None:
    text, old, new = str(s), str(old), str(new)
    times = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    if len(text) + times * len(new) > MAX_OUTPUT_CHARS * 2:
        raise UnsafeTemplate("a replacement longer than a push message can carry")


def _check_indent(s: Any, width: Any = 4, *args: Any, **kwargs: Any) -> None:
    lines = str(s).count("\n") + 1
    size = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    if size * lines > MAX_OUTPUT_CHARS * 2:
        raise UnsafeTemplate("an indent longer than a push message can carry")


def _check_join(value: Any, d: Any = "", *args: Any, **kwargs: Any) -> None:
    if isinstance(value, Sized) and len(value) * len(str(d)) > MAX_OUTPUT_CHARS * 2:
        raise UnsafeTemplate("a join longer than a push message can carry")


def _check_wordwrap(s: Any, width: Any = 79, *args: Any, **kwargs: Any) -> None:
    wrapstring = kwargs.get("wrapstring", args[1] if len(args) > 1 else None) or "\n"
    lines = len(str(s)) // max(width, 1) + 1 if isinstance(width, int) else 1
    if lines * len(str(wrapstring)) > MAX_OUTPUT_CHARS * 2:
        raise UnsafeTemplate("a wrap longer than a push message can carry")


def _check_format(value: Any, *args: Any, **kwargs: Any) -> None:
    _check_printf(str(value), kwargs or args)


# Filters whose arguments set how much they allocate: checked before they run (every
# filter's result is checked after).
_FILTER_CHECKS: dict[str, Callable[..., None]] = {
    "center": _check_size_arguments,
    "batch": _check_size_arguments,
    "slice": _check_size_arguments,
    "truncate": _check_size_arguments,
    "urlize": _check_size_arguments,
    "replace": _check_replace,
    "indent": _check_indent,
    "join": _check_join,
    "wordwrap": _check_wordwrap,
    "format": _check_format,
}


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    check_arguments = _FILTER_CHECKS.get(name)
    # Filters marked pass_context / pass_environment / pass_eval_context get that first.
    passed = 1 if hasattr(function, "jinja_pass_arg") else 0

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if check_arguments is not None:
            check_arguments(*args[passed:], **kwargs)
        return _bounded(function(*args, **kwargs))

    return bounded


_LOOP_FILTER = "_clarion_bounded_loop"


def _bounded_loop(items: Iterable[Any]) -> Iterator[Any]:
    budget = _loop_budget.get(None)
    for item in items:
        if budget is not None:
            budget[0] -= 1
            if budget[0] < 0:
                raise UnsafeTemplate(f"more than {MAX_LOOP_ITERATIONS} loop iterations")
        yield item


def _refuse_unsafe(tree: nodes.Template, source: str) -> None:
    """TemplateProblem UNSAFE_TEMPLATE for a statement a template may not hold, or a
    read of an attribute starting with `_`."""
    for node in tree.find_all(nodes.Node):
        refused = next(
            (what for kind, what in _REFUSED_NODES.items() if isinstance(node, kind)), None
        )
        if isinstance(node, nodes.For) and node.recursive:
            refused = "use recursive loops"
        name = (
            node.attr
            if isinstance(node, nodes.Getattr)
            else _constant(node.arg)
            if isinstance(node, nodes.Getitem)
            else None
        )
        if name is not None and name.startswith("_"):
            refused = f"read {name!r}"
        if refused is not None:
            line = node.lineno
            raise TemplateProblem(
                "UNSAFE_TEMPLATE",
                f"line {line}: a template may not {refused}",
                line,
                _column(source, line, name, attribute=True) if name else 1,
            )


def _refuse_unknown_filters(
    environment: jinja2.Environment, tree: nodes.Template, source: str
) -> None:
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        known = environment.filters if isinstance(node, nodes.Filter) else environment.tests
        if node.name not in known:
            kind = "filter" if isinstance(node, nodes.Filter) else "test"
            line = node.lineno
            column = _column(source, line, node.name, attribute=True)
            raise TemplateProblem(
                "INVALID_TEMPLATE",
                f"line {line}, column {column}: no {kind} named {node.name!r}",
                line,
                column,
            )


def _compile(environment: jinja2.Environment, tree: nodes.Template) -> jinja2.Template:
    """`tree` compiled with each loop's iterations counted against the rendering's
    budget."""
    for loop in tree.find_all(nodes.For):
        loop.iter = nodes.Filter(loop.iter, _LOOP_FILTER, [], [], None, None, lineno=loop.lineno)
    try:
        return environment.from_string(tree)
    except (RecursionError, SyntaxError):
        raise UnsafeTemplate("a template nested too deeply") from None


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
    except RecursionError:
        raise TemplateProblem(
            "INVALID_TEMPLATE", "line 1: the template is nested too deeply", 1, 1
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
    _refuse_unsafe(tree, source)
    _refuse_unknown_filters(environment, tree, source)
    declared_free = jinja2.meta.find_undeclared_variables(tree)
    for name in sorted(declared_free):
        first = min(n.lineno for n in tree.find_all(nodes.Name) if n.name == name)
        line, column = first, _column(source, first, name)
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
        template = _compile(environment, tree)
    except jinja2.TemplateSyntaxError as error:
        line = error.lineno or 1
        raise TemplateProblem(
            "INVALID_TEMPLATE", f"line {line}: {error.message}", line, 1
        ) from None
    try:
        _render_bounded(template, {n: {} for n in NAMESPACES})
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
        # Which values are templates, each compiled, worked out once: a render then
        # only renders them and copies the rest.
        self._fill = _planned(self._document, missing)
        self.templated = self._fill is not None

    def render(self, context: Mapping[str, Any]) -> bytes:
        document = self._document if self._fill is None else self._fill(context)
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


_Fill = Callable[[Mapping[str, Any]], Any]


def _planned(value: Any, missing: MissingValues) -> _Fill | None:
    """How to fill `value` for a context; None when it holds no template."""
    if isinstance(value, str):
        if not is_template(value):
            return None
        try:
            template = _compiled(value, missing)
        except RenderRefused as error:
            # Refused for every recipient alike, as it would be when rendered.
            refused = error

            def refuse(context: Mapping[str, Any]) -> Any:
                raise refused

            return refuse
        return functools.partial(_render_bounded, template)
    if isinstance(value, list):
        items = [(item, _planned(item, missing)) for item in value]
        if all(fill is None for _, fill in items):
            return None
        return lambda context: [item if fill is None else fill(context) for item, fill in items]
    if isinstance(value, dict):
        fields = [(key, item, _planned(item, missing)) for key, item in value.items()]
        if all(fill is None for _, _, fill in fields):
            return None
        return lambda context: {
            key: item if fill is None else fill(context) for key, item, fill in fields
        }
    return None


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
    """The template, refused (UnsafeTemplate) as `check` would refuse it: what delivery
    renders was checked by campaign, but a payload is not trusted for it."""
    environment = _environment(missing)
    try:
        tree = environment.parse(source)
        _refuse_unsafe(tree, source)
        return _compile(environment, tree)
    except TemplateProblem as problem:
        raise UnsafeTemplate(str(problem)) from None
    except jinja2.TemplateSyntaxError as error:
        raise RenderRefused(f"the template does not parse: {error.message}") from None
    except RecursionError:
        raise UnsafeTemplate("a template nested too deeply") from None


def _render_bounded(template: jinja2.Template, context: Mapping[str, Any]) -> str:
    parts: list[str] = []
    size = 0
    budget = _loop_budget.set([MAX_LOOP_ITERATIONS])
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
    except RecursionError:
        raise UnsafeTemplate("a template nested too deeply") from None
    except (MissingValue, RenderRefused):
        raise
    except (TypeError, ValueError, ArithmeticError, LookupError, jinja2.TemplateError) as error:
        # A value of an unexpected type (e.g. a filter given a number): not renderable.
        raise RenderRefused(f"the template failed on this recipient's values: {error}") from None
    finally:
        _loop_budget.reset(budget)
    return "".join(parts)


def _constant(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        return node.value
    return None


def _is_read_through(tree: nodes.Template, name: nodes.Name) -> bool:
    return any(
        getattr(node, "node", None) is name
        for node in tree.find_all((nodes.Getattr, nodes.Getitem))
    )


def _column(source: str, line: int, name: str, attribute: bool = False) -> int:
    """The 1-based column of `name` read on `line`: the first whole word inside a tag
    (not in the text around tags, nor in a longer name, nor after a dot unless it is an
    `attribute`); 1 if not found."""
    before = r"(?<!\w)" if attribute else r"(?<![\w.])"
    word = re.compile(rf"{before}{re.escape(name)}(?!\w)")
    for tag in _TAG.finditer(source):
        for found in word.finditer(tag.group()):
            offset = tag.start() + found.start()
            if source.count("\n", 0, offset) + 1 == line:
                return offset - (source.rfind("\n", 0, offset) + 1) + 1
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
