"""CMCD (CTA-5004, Common Media Client Data) mapped to :class:`~schemas.events.PlaybackQos`.

Players send CMCD either as the ``CMCD`` query parameter of a media request (URL-decoded:
``br=3200,bs,cid="course-data-101/video-1",ot=v,sid="6e2f…",su``) or as the four headers
``CMCD-Request``, ``CMCD-Object``, ``CMCD-Status`` and ``CMCD-Session`` (merged into one dict).

Grammar (:func:`parse_cmcd`): comma-separated ``key[=value]`` (spaces around commas allowed).
A key without a value is boolean true (``?1``/``?0`` are read as true/false too). A value is a
double-quoted string (escapes ``\\"`` and ``\\\\`` only; commas allowed inside), an integer, a
decimal, or a token (``ot=v``, ``sf=d``, ``st=v``; kept as a string). Anything else, such as an
unterminated quote, a bad escape, a trailing comma or an empty key, raises :class:`CmcdError`.
A repeated key keeps its last value; across headers, later headers in the order above win.

Mapping (:func:`cmcd_to_event`), always ``report="cmcd"``:

* ``br`` -> ``avg_bitrate_kbps``; ``tb`` -> ``peak_bitrate_kbps`` when ``tb >= br`` (or no
  ``br``), else left unset; ``mtp`` -> ``throughput_kbps``; ``bs`` (buffer starvation, true) ->
  ``rebuffer_count = 1`` (else 0); ``sid`` -> ``playback_id`` (required).
* ``cid`` -> ``video_id``; a ``cid`` with ``/`` is ``"<course_id>/<video_id>"`` (split at the last
  ``/``).
* Custom keys supply what CMCD lacks: ``com.learnstream-learner`` (learner_id),
  ``com.learnstream-course``, ``com.learnstream-video``, ``com.learnstream-session`` and
  ``com.learnstream-net`` (the client's network type; it replaces the caller's value).
* Precedence for each id: caller ``overrides`` (the POST /v1/cmcd query parameters
  ``learner_id``, ``course_id``, ``video_id``, ``session_id``) > custom key > ``cid``.
  ``session_id`` falls back to ``sid``. Other override keys are ignored.
* Every received key, known or not, is kept unchanged in the event's ``cmcd`` dict (``su`` too).
* ``event_id`` defaults to a uuid5 over ``sid``, the sorted CMCD payload and ``occurred_at``, so a
  re-sent sample gets the same id.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import parse_qs

from schemas.events import Client, PlaybackQos

__all__ = [
    "CMCD_HEADERS",
    "CmcdError",
    "CmcdValue",
    "cmcd_from_headers",
    "cmcd_from_query",
    "cmcd_to_event",
    "default_event_id",
    "parse_cmcd",
]

CmcdValue = str | int | float | bool

CMCD_HEADERS = ("CMCD-Request", "CMCD-Object", "CMCD-Status", "CMCD-Session")

KEY_LEARNER = "com.learnstream-learner"
KEY_COURSE = "com.learnstream-course"
KEY_VIDEO = "com.learnstream-video"
KEY_SESSION = "com.learnstream-session"
KEY_NET = "com.learnstream-net"

CMCD_EVENT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://learnstream.dev/cmcd/sample")

_KEY = re.compile(r"[A-Za-z*][A-Za-z0-9_.*-]*")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_TOKEN = re.compile(r"[A-Za-z*][A-Za-z0-9!#$%&'*+.^_`|~:/-]*")
_OWS = " \t"


class CmcdError(ValueError):
    """A malformed CMCD payload, or one that lacks what an event needs."""


def parse_cmcd(text: str) -> dict[str, CmcdValue]:
    """Parse one CMCD payload (query value, URL-decoded, or one header value) into a dict."""
    if not isinstance(text, str):
        raise CmcdError(f"CMCD payload must be a string, got {type(text).__name__}")
    out: dict[str, CmcdValue] = {}
    n = len(text)
    pos = _skip_ows(text, 0)
    if pos == n:
        return out
    while True:
        match = _KEY.match(text, pos)
        if not match:
            raise CmcdError(f"CMCD: expected a key at position {pos}, found {_near(text, pos)}")
        key = match.group()
        pos = match.end()
        value: CmcdValue = True
        if pos < n and text[pos] == "=":
            value, pos = _value(text, pos + 1, key)
        out[key] = value
        pos = _skip_ows(text, pos)
        if pos == n:
            return out
        if text[pos] != ",":
            raise CmcdError(
                f"CMCD: expected ',' after key {key!r} at position {pos}, found {_near(text, pos)}"
            )
        pos = _skip_ows(text, pos + 1)
        if pos == n:
            raise CmcdError("CMCD: trailing ',' at the end of the payload")


def cmcd_from_query(query: str) -> dict[str, CmcdValue]:
    """The CMCD of a raw (URL-encoded) query string: its ``CMCD`` parameter, parsed."""
    values = parse_qs(query, keep_blank_values=True).get("CMCD", [])
    merged: dict[str, CmcdValue] = {}
    for value in values:
        merged.update(parse_cmcd(value))
    return merged


def cmcd_from_headers(headers: Mapping[str, str]) -> dict[str, CmcdValue]:
    """Merge the four CMCD headers (names case-insensitive) into one dict."""
    wanted = {name.lower(): rank for rank, name in enumerate(CMCD_HEADERS)}
    found: list[tuple[int, str, str]] = []
    for name, value in headers.items():
        rank = wanted.get(name.lower())
        if rank is not None:
            found.append((rank, name, value))
    merged: dict[str, CmcdValue] = {}
    for _, name, value in sorted(found, key=lambda item: item[0]):
        try:
            merged.update(parse_cmcd(value))
        except CmcdError as exc:
            raise CmcdError(f"header {name}: {exc}") from None
    return merged


def cmcd_to_event(
    cmcd: Mapping[str, CmcdValue],
    client: Client,
    occurred_at: datetime,
    event_id: uuid.UUID | None = None,
    overrides: Mapping[str, str] | None = None,
) -> PlaybackQos:
    """Map one CMCD sample to a ``PlaybackQos`` with ``report="cmcd"`` (see the module doc).

    Raises :class:`CmcdError` when an id is missing or a known key has the wrong type; a pydantic
    ``ValidationError`` when the mapped values break the event model.
    """
    if occurred_at.tzinfo is None or occurred_at.utcoffset() is None:
        raise CmcdError("occurred_at must be timezone-aware")
    given = {k: v for k, v in (overrides or {}).items() if isinstance(v, str) and v}

    sid = _id_value(cmcd, "sid")
    if sid is None:
        raise CmcdError(
            "CMCD key 'sid' (playback session id) is missing: the player must send "
            'sid="<uuid>" with every request'
        )
    cid_course = cid_video = None
    cid = _id_value(cmcd, "cid")
    if cid is not None:
        if "/" in cid:
            cid_course, cid_video = cid.rsplit("/", 1)
            cid_course, cid_video = cid_course or None, cid_video or None
        else:
            cid_video = cid

    learner_id = given.get("learner_id") or _id_value(cmcd, KEY_LEARNER)
    course_id = given.get("course_id") or _id_value(cmcd, KEY_COURSE) or cid_course
    video_id = given.get("video_id") or _id_value(cmcd, KEY_VIDEO) or cid_video
    session_id = given.get("session_id") or _id_value(cmcd, KEY_SESSION) or sid
    if learner_id is None:
        raise CmcdError(
            f'learner id is missing: send the CMCD key {KEY_LEARNER}="<learner id>" or the '
            "learner_id query parameter of POST /v1/cmcd"
        )
    if course_id is None:
        raise CmcdError(
            f'course id is missing: send cid="<course_id>/<video_id>", the CMCD key '
            f'{KEY_COURSE}="<course id>" or the course_id query parameter of POST /v1/cmcd'
        )
    if video_id is None:
        raise CmcdError(
            f'video id is missing: send cid="<course_id>/<video_id>", the CMCD key '
            f'{KEY_VIDEO}="<video id>" or the video_id query parameter of POST /v1/cmcd'
        )

    net = cmcd.get(KEY_NET)
    if net is not None:
        if not isinstance(net, str):
            raise CmcdError(f"CMCD key {KEY_NET} must be a string or token, got {net!r}")
        client = Client(**{**client.model_dump(), "network_type": net})

    br = _kbps(cmcd, "br")
    tb = _kbps(cmcd, "tb")
    peak = tb if tb is not None and (br is None or tb >= br) else None

    if event_id is None:
        event_id = default_event_id(cmcd, occurred_at)
    return PlaybackQos(
        event_id=event_id,
        occurred_at=occurred_at,
        learner_id=learner_id,
        session_id=session_id,
        client=client,
        course_id=course_id,
        video_id=video_id,
        playback_id=sid,
        report="cmcd",
        rebuffer_count=1 if cmcd.get("bs") is True else 0,
        avg_bitrate_kbps=br,
        peak_bitrate_kbps=peak,
        throughput_kbps=_kbps(cmcd, "mtp"),
        cmcd=dict(cmcd),
    )


def default_event_id(cmcd: Mapping[str, CmcdValue], occurred_at: datetime) -> uuid.UUID:
    """uuid5 over (sid, the sorted CMCD payload, occurred_at in UTC): the same sample, same id."""
    payload = json.dumps(dict(cmcd), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    name = "\n".join((str(cmcd.get("sid", "")), payload, occurred_at.astimezone(UTC).isoformat()))
    return uuid.uuid5(CMCD_EVENT_NAMESPACE, name)


# --- helpers ---------------------------------------------------------------------------------


def _value(text: str, pos: int, key: str) -> tuple[CmcdValue, int]:
    n = len(text)
    if pos >= n or text[pos] in ", \t":
        raise CmcdError(f"CMCD: key {key!r} has '=' but no value (position {pos})")
    char = text[pos]
    if char == '"':
        return _string(text, pos, key)
    if char == "?":
        if text[pos + 1 : pos + 2] in ("0", "1") and _at_end(text, pos + 2):
            return text[pos + 1] == "1", pos + 2
        raise CmcdError(f"CMCD: key {key!r} has a bad boolean at position {pos} (use ?0 or ?1)")
    number = _NUMBER.match(text, pos)
    if number and _at_end(text, number.end()):
        literal = number.group()
        return (float(literal) if "." in literal else int(literal)), number.end()
    token = _TOKEN.match(text, pos)
    if token and _at_end(text, token.end()):
        return token.group(), token.end()
    raise CmcdError(
        f"CMCD: value of key {key!r} at position {pos} is not a number, token or quoted string "
        f"(strings must be double-quoted): {_near(text, pos)}"
    )


def _string(text: str, pos: int, key: str) -> tuple[str, int]:
    chars: list[str] = []
    i = pos + 1
    n = len(text)
    while i < n:
        char = text[i]
        if char == "\\":
            if i + 1 < n and text[i + 1] in '"\\':
                chars.append(text[i + 1])
                i += 2
                continue
            raise CmcdError(
                f'CMCD: bad escape in the string of key {key!r} at position {i} (only \\" and '
                "\\\\ are allowed)"
            )
        if char == '"':
            return "".join(chars), i + 1
        if ord(char) < 0x20 or ord(char) == 0x7F:
            raise CmcdError(f"CMCD: control character in the string of key {key!r}")
        chars.append(char)
        i += 1
    raise CmcdError(f"CMCD: unterminated quoted string for key {key!r} starting at position {pos}")


def _at_end(text: str, pos: int) -> bool:
    return pos == len(text) or text[pos] in ", \t"


def _skip_ows(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _OWS:
        pos += 1
    return pos


def _near(text: str, pos: int) -> str:
    return repr(text[pos : pos + 20]) if pos < len(text) else "the end"


def _id_value(cmcd: Mapping[str, CmcdValue], key: str) -> str | None:
    value = cmcd.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise CmcdError(f"CMCD key {key!r} must be a string, got {value!r}")
    return str(value) or None


def _kbps(cmcd: Mapping[str, CmcdValue], key: str) -> int | None:
    value = cmcd.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CmcdError(f"CMCD key {key!r} must be a number in kbps, got {value!r}")
    return round(value)
