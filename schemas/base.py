"""The strict base every event model shares, and the wire types: UTC time, ids, money."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
)
from pydantic_core import ErrorDetails

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = frozenset({1})


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp needs a time zone: use UTC with a Z suffix")
    return value.astimezone(UTC)


def format_utc(value: datetime) -> str:
    """The wire form of a timestamp: UTC, millisecond precision, ``Z`` suffix."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # isoformat is several times faster than strftime, and this runs for every timestamp
    return value.isoformat(timespec="milliseconds")[:-6] + "Z"


UtcDatetime = Annotated[
    datetime,
    AfterValidator(_to_utc),
    PlainSerializer(format_utc, return_type=str, when_used="json"),
    Field(json_schema_extra={"format": "date-time", "example": "2026-11-28T10:00:00.123Z"}),
]

# Identifiers (learner, course, session, video, …): 1 to 128 printable characters. Control
# characters (U+0000-U+001F, U+007F-U+009F) and the line and paragraph separators U+2028/U+2029
# are refused: they break logs, CSV exports, URLs and terminal output, and are never part of a
# real id. Any other Unicode character is allowed (docs/events.md, "Identifiers"). The check is
# a pattern, run by pydantic-core for every id of every event; :func:`readable` turns its
# failure into a message a person can act on.
ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"
ID_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

Id = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, strip_whitespace=False, pattern=ID_PATTERN),
]


def readable(error: ErrorDetails, with_input: bool = True) -> str:
    """One validation error's message, for people: an id's control character is named with
    its code point and position (only when ``with_input``: the value may hold a learner id)."""
    if (
        error["type"] == "string_pattern_mismatch"
        and error.get("ctx", {}).get("pattern") == ID_PATTERN
    ):
        found = ID_FORBIDDEN.search(error["input"]) if with_input else None
        if found:
            where = f"U+{ord(found.group()):04X} at position {found.start()}"
            return f"ids must be printable: control character {where}"
        return "ids must be printable: no control characters"
    return error["msg"].removeprefix("Value error, ")


Text = Annotated[str, StringConstraints(min_length=1, max_length=512)]

_DIGITS = re.compile(r"^[0-9]{1,78}$")


def _wei(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("wei amount must be an integer, not a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _DIGITS.match(value):
        return int(value)
    raise ValueError("wei amount must be a non-negative integer or a string of digits")


# Wei does not fit in a double (or a JS number) and often not in int64: on the wire it is a
# string of decimal digits; integers are accepted on input.
Wei = Annotated[
    int,
    BeforeValidator(_wei),
    Field(ge=0, lt=2**256),
    PlainSerializer(str, return_type=str, when_used="json"),
]

Address = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{40}$")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class Strict(BaseModel):
    """Strict models: unknown fields are errors, types are not coerced, strings not empty."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        str_min_length=1,
        frozen=True,
        populate_by_name=False,
        ser_json_inf_nan="strings",
    )


class Money(Strict):
    """An amount in integer minor units (cents, pence) of an ISO 4217 currency."""

    amount_minor: int = Field(ge=0, description="Integer minor units, e.g. 4900 = 49.00")
    currency: Currency
