"""Expand a panel's SQL as the grafana-clickhouse-datasource plugin does, with values bound.

The plugin expands a query in two places. Its frontend first replaces
``$__conditionalAll(condition, $var)`` (by ``1=1`` when the variable is All, else by the
condition; the last one in the query first) and then Grafana's template variables; its backend
then expands the time macros (pkg/macros/macros.go):

- ``$__timeFilter(c)`` → ``c >= toDateTime(<from s>) AND c <= toDateTime(<to s>)``;
- ``$__timeFilter_ms(c)`` → ``c >= fromUnixTimestamp64Milli(<from ms>) AND c <= …(<to ms>)``;
- ``$__fromTime``, ``$__toTime`` → ``toDateTime(<s>)``; ``$__fromTime_ms``, ``$__toTime_ms`` →
  ``fromUnixTimestamp64Milli(<ms>)``;
- ``$__timeInterval(c)`` → ``toStartOfInterval(toDateTime(c), INTERVAL <s> second)``, a bucket;
- ``$__interval_s`` → the panel's interval in whole seconds, at least 1.

The difference is the project's rule: a value is never formatted into SQL. Every time and every
variable's values become ClickHouse query parameters (``{__from:Int64}``, ``{__to:Int64}``,
``{__from_ms:Int64}``, ``{__to_ms:Int64}``, ``{__interval_s:UInt32}``), so :func:`expand`
returns the SQL and its parameters (a multi-value variable as ``{name:Array(String)}``, which
``x IN (…)`` accepts).
Where the plugin would silently leave a malformed macro in place, this raises
:class:`~dashboards.errors.MacroError`, naming it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dashboards.errors import MacroError

CONDITIONAL_ALL = "$__conditionalAll("
# Grafana's variable syntaxes $name, ${name} and ${name:format}; names starting with __ are
# macros or Grafana's own ($__interval_s), left to the backend step.
_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")
_MACRO = re.compile(r"\$__(\w+)")
# Formats that quote each value, as a bound Array(String) does.
_QUOTING_FORMATS = {"singlequote", "sqlstring"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND, _MILLISECOND = timedelta(seconds=1), timedelta(milliseconds=1)


@dataclass(frozen=True)
class Selection:
    """A variable's selected values; ``all`` when "All" is selected (``values`` are then every
    option, which is what Grafana puts in for ``${var:singlequote}``)."""

    values: tuple[str, ...]
    all: bool = False


@dataclass(frozen=True)
class QueryContext:
    """What Grafana knows when it runs a panel's query: the time range (tz-aware), the
    interval it chose for the panel's width, and the variables' selections."""

    start: datetime
    end: datetime
    interval_s: float = 60.0
    variables: Mapping[str, Selection] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise MacroError("the time range must be tz-aware")


def macro_args(sql: str, open_at: int) -> tuple[list[str], int]:
    """The arguments of the macro whose ``(`` is at ``open_at``, split at the commas outside
    nested parentheses (as the plugin does; quotes are not special), and the index after the
    closing ``)``."""
    depth, start, args = 0, open_at + 1, []
    for i in range(open_at, len(sql)):
        char = sql[i]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                args.append(sql[start:i])
                return args, i + 1
        elif char == "," and depth == 1:
            args.append(sql[start:i])
            start = i + 1
    raise MacroError(f"unbalanced parentheses after {sql[max(0, open_at - 20) : open_at]!r}")


def _conditional_all(sql: str, context: QueryContext) -> str:
    """Replace every ``$__conditionalAll(condition, $var)``, the last one first."""
    at = sql.rfind(CONDITIONAL_ALL)
    while at != -1:
        args, end = macro_args(sql, at + len(CONDITIONAL_ALL) - 1)
        if len(args) != 2:
            raise MacroError(
                f"$__conditionalAll expects 2 arguments (condition, $variable), received "
                f"{len([a for a in args if a.strip()])}: {sql[at:end]!r}"
            )
        condition, variable = args[0].strip(), args[1].strip()
        match = _VARIABLE.fullmatch(variable)
        if not condition or not match:
            raise MacroError(f"$__conditionalAll needs a condition and a $variable: {variable!r}")
        selection = _selection(match.group(1) or match.group(3), context)
        phrase = "1=1" if selection.all or not selection.values else condition
        sql = sql[:at] + phrase + sql[end:]
        at = sql.rfind(CONDITIONAL_ALL)
    return sql


def _selection(name: str, context: QueryContext) -> Selection:
    try:
        return context.variables[name]
    except KeyError:
        known = sorted(context.variables)
        raise MacroError(f"variable ${name} is not given (known: {known})") from None


def _variables(sql: str, context: QueryContext, params: dict[str, Any]) -> str:
    def bind(match: re.Match[str]) -> str:
        name, fmt, bare = match.group(1), match.group(2), match.group(3)
        if (bare or name).startswith("__"):
            return match.group(0)
        if bare or fmt not in _QUOTING_FORMATS:
            raise MacroError(
                f"{match.group(0)}: write ${{{bare or name}:singlequote}} inside IN (…); other "
                "formats would paste values into the SQL unquoted"
            )
        params[name] = list(_selection(name, context).values)
        return f"{{{name}:Array(String)}}"

    return _VARIABLE.sub(bind, sql)


def _time_macros(sql: str, context: QueryContext, params: dict[str, Any]) -> str:
    out: list[str] = []
    pos = 0
    for match in _MACRO.finditer(sql):
        if match.start() < pos:
            continue  # inside the arguments of a macro already expanded
        name, end = match.group(1), match.end()
        args: list[str] = []
        if end < len(sql) and sql[end] == "(":
            args, end = macro_args(sql, end)
            args = [a.strip() for a in args if a.strip()]
        out.append(sql[pos : match.start()])
        out.append(_expand_one(name, args, context, params))
        pos = end
    out.append(sql[pos:])
    return "".join(out)


def _expand_one(
    name: str, args: Sequence[str], context: QueryContext, params: dict[str, Any]
) -> str:
    start, end = context.start - _EPOCH, context.end - _EPOCH
    seconds = {"__from": start // _SECOND, "__to": end // _SECOND}
    millis = {"__from_ms": start // _MILLISECOND, "__to_ms": end // _MILLISECOND}
    one_column = {"timeFilter", "timeFilter_ms", "timeInterval"}
    if name not in one_column | {"fromTime", "toTime", "fromTime_ms", "toTime_ms", "interval_s"}:
        raise MacroError(f"$__{name} is not a macro of the ClickHouse plugin that panels may use")
    if len(args) != (1 if name in one_column else 0):
        wanted = 1 if name in one_column else 0
        raise MacroError(f"$__{name}: expected {wanted} argument(s), received {len(args)}")
    if name == "timeFilter":
        params.update(seconds)
        c = args[0]
        return f"{c} >= toDateTime({{__from:Int64}}) AND {c} <= toDateTime({{__to:Int64}})"
    if name == "timeFilter_ms":
        params.update(millis)
        c = args[0]
        return (
            f"{c} >= fromUnixTimestamp64Milli({{__from_ms:Int64}}) "
            f"AND {c} <= fromUnixTimestamp64Milli({{__to_ms:Int64}})"
        )
    if name in ("fromTime", "toTime"):
        key = "__from" if name == "fromTime" else "__to"
        params[key] = seconds[key]
        return f"toDateTime({{{key}:Int64}})"
    if name in ("fromTime_ms", "toTime_ms"):
        key = "__from_ms" if name == "fromTime_ms" else "__to_ms"
        params[key] = millis[key]
        return f"fromUnixTimestamp64Milli({{{key}:Int64}})"
    params["__interval_s"] = max(int(context.interval_s), 1)
    if name == "interval_s":
        return "{__interval_s:UInt32}"
    return f"toStartOfInterval(toDateTime({args[0]}), INTERVAL {{__interval_s:UInt32}} second)"


def expand(sql: str, context: QueryContext) -> tuple[str, dict[str, Any]]:
    """The SQL ClickHouse runs for ``sql`` in ``context``, and the parameters it binds."""
    params: dict[str, Any] = {}
    sql = _conditional_all(sql, context)
    sql = _variables(sql, context, params)
    sql = _time_macros(sql, context, params)
    return sql, params
