"""xAPI statements (1.0.3 and 2.0) mapped to learner events.

Two kinds of statement are understood; anything else raises :class:`XapiMappingError`.

**Video** (xAPI Video Profile) -> :class:`~schemas.events.VideoPlayback`. Verbs:
``https://w3id.org/xapi/video/verbs/{played,paused,seeked}`` and
``http://adlnet.gov/expapi/verbs/{initialized,completed,terminated}`` (the same three names under
the ``https://w3id.org/xapi/video/verbs/`` namespace are accepted too). The event's ``verb`` is
the last segment of the verb IRI. Extensions (prefix ``https://w3id.org/xapi/video/extensions/``):

* ``result.extensions``: ``time`` -> ``time``; ``time-from`` / ``time-to`` -> ``time_from`` /
  ``time_to`` (verb ``seeked`` only, where ``time`` defaults to ``time-to``); ``progress`` ->
  ``progress``; ``played-segments`` (``"0[.]10.5[,]20[.]30"``) -> ``[[0, 10.5], [20, 30]]``.
* ``context.extensions``: ``length`` -> ``length`` (required); ``session-id`` -> ``session_id``.
* ``progress`` is 0..1 in the profile. Some players send a percentage: a value > 1 and <= 100 is
  read as percent and divided by 100. Exactly 1 is read as 1.0 (complete), not 1 %.

**Quiz** -> :class:`~schemas.events.QuizResult`: verb ``http://adlnet.gov/expapi/verbs/`` +
``passed``, ``failed``, ``completed`` or ``answered`` on an object whose ``definition.type`` is
``http://adlnet.gov/expapi/activities/assessment``, or any verb whose IRI ends in ``/scored``.
``completed`` on any other object is a video statement.

* ``result.score``: ``score = raw``, ``max_score = max`` when both are given (a non-zero ``min``
  shifts both: ``raw - min`` of ``max - min``); otherwise ``score = scaled``, ``max_score = 1``.
* ``passed = result.success``; without ``success`` the verb decides (``passed``/``failed``); a
  ``success`` that contradicts the verb is an error. Other verbs need ``success``.
* ``attempt`` from the context extension ``https://learnstream.dev/xapi/attempt`` (default 1).
* ``duration_ms`` from the ISO 8601 ``result.duration`` (``PT5M12S``; default 0). Years and months
  are rejected (their length is not fixed); weeks count 7 days.

**Identity**, for both kinds:

* ``learner_id``: ``actor.account.name``, else ``actor.mbox_sha1sum``, else ``actor.mbox`` without
  ``mailto:``, else ``actor.openid`` (an actor has exactly one of these in xAPI).
* ``course_id``: ``context.contextActivities.parent[0].id``, else ``grouping[0].id``.
* ``video_id`` / ``quiz_id``: ``object.id``.
* Activity IRIs become ids by their **last path segment** (percent-decoded):
  ``https://lms.example/courses/course-data-101`` -> ``course-data-101``. An IRI with a query or a
  fragment (``…/view.php?id=42``), or without a path segment, is kept whole, so that two distinct
  activities never collapse into one id.
* ``event_id``: ``statement.id`` (a UUID); without one, a uuid5 over the canonical JSON of the
  statement (sorted keys, compact), so a re-sent statement gets the same id.
* ``occurred_at``: ``timestamp``, which must carry a time zone (a naive timestamp is an error).
* ``session_id``: the video ``session-id`` context extension, else ``context.registration``, else
  ``"xapi"``.
* ``client``: passed in by the caller (the collector builds it from request headers);
  :func:`default_client` is the fallback.

Unknown extensions and other unused statement fields are ignored, never fatal. Models are built
with Python values; a pydantic ``ValidationError`` from them propagates unchanged.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlsplit

from schemas.events import Client, QuizResult, VideoPlayback

__all__ = [
    "XapiMappingError",
    "default_client",
    "iri_to_id",
    "parse_duration_ms",
    "parse_played_segments",
    "statement_to_event",
    "statements_from_body",
]

ADL_VERBS = "http://adlnet.gov/expapi/verbs/"
VIDEO_VERBS = "https://w3id.org/xapi/video/verbs/"
VIDEO_EXT = "https://w3id.org/xapi/video/extensions/"
ASSESSMENT_TYPE = "http://adlnet.gov/expapi/activities/assessment"
ATTEMPT_EXT = "https://learnstream.dev/xapi/attempt"

_VIDEO_NAMES = ("initialized", "played", "paused", "seeked", "completed", "terminated")
VIDEO_VERB_IRIS: dict[str, str] = {
    **{VIDEO_VERBS + name: name for name in _VIDEO_NAMES},
    ADL_VERBS + "initialized": "initialized",
    ADL_VERBS + "completed": "completed",
    ADL_VERBS + "terminated": "terminated",
}
QUIZ_VERB_IRIS: dict[str, str] = {
    ADL_VERBS + name: name for name in ("passed", "failed", "completed", "answered")
}

# Namespace of the uuid5 event ids of statements without an id.
STATEMENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://learnstream.dev/xapi/statement")


class XapiMappingError(ValueError):
    """A statement that cannot be mapped: unsupported verb, missing or malformed field."""


def default_client() -> Client:
    """The client of a statement whose sender said nothing about itself."""
    return Client(platform="other", app_version="xapi", device="unknown", network_type="unknown")


def statements_from_body(body: object) -> list[dict[str, Any]]:
    """The statements of a request body: one statement object or a list of them.

    ``body`` is parsed JSON; ``str``/``bytes`` are parsed here. An empty list gives ``[]``.
    """
    if isinstance(body, bytes | bytearray | str):
        try:
            body = json.loads(body)
        except ValueError as exc:
            raise XapiMappingError(f"body is not valid JSON: {exc}") from None
    if isinstance(body, dict):
        return [body]
    if isinstance(body, list):
        for index, item in enumerate(body):
            if not isinstance(item, dict):
                raise XapiMappingError(
                    f"statement [{index}] must be a JSON object, got {type(item).__name__}"
                )
        return list(body)
    raise XapiMappingError(
        f"body must be a statement object or a list of statements, got {type(body).__name__}"
    )


def statement_to_event(statement: dict[str, Any], client: Client) -> VideoPlayback | QuizResult:
    """Map one xAPI statement to a ``VideoPlayback`` or a ``QuizResult``.

    Raises :class:`XapiMappingError` for an unsupported statement or a missing/malformed field;
    a pydantic ``ValidationError`` when the mapped values break the event model.
    """
    if not isinstance(statement, Mapping):
        raise XapiMappingError(f"statement must be a JSON object, got {type(statement).__name__}")
    verb_iri = _verb_iri(statement)
    obj = _mapping(statement, "object", "statement.object", required=True)
    definition = _mapping(obj, "definition", "object.definition")
    object_type = definition.get("type")

    is_quiz = (verb_iri in QUIZ_VERB_IRIS and object_type == ASSESSMENT_TYPE) or (
        verb_iri.rstrip("/").endswith("/scored")
    )
    if is_quiz:
        return _quiz(statement, verb_iri, client)
    if verb_iri in VIDEO_VERB_IRIS:
        return _video(statement, VIDEO_VERB_IRIS[verb_iri], client)
    if verb_iri in QUIZ_VERB_IRIS:
        raise XapiMappingError(
            f"verb {verb_iri!r} maps to a quiz result only on an object with definition.type "
            f"{ASSESSMENT_TYPE!r} (got {object_type!r})"
        )
    raise XapiMappingError(
        f"verb {verb_iri!r} is not supported; video verbs: {sorted(VIDEO_VERB_IRIS)}; quiz "
        f"verbs: {sorted(QUIZ_VERB_IRIS)} on an assessment, or a verb ending in '/scored'"
    )


# --- kinds -----------------------------------------------------------------------------------


def _video(statement: Mapping[str, Any], verb: str, client: Client) -> VideoPlayback:
    result = _mapping(statement, "result", "statement.result")
    context = _mapping(statement, "context", "statement.context")
    r_ext = _mapping(result, "extensions", "result.extensions")
    c_ext = _mapping(context, "extensions", "context.extensions")

    length = _number(c_ext, VIDEO_EXT + "length", "context.extensions")
    if length is None:
        raise XapiMappingError(
            f"video statement needs the video length in seconds: context.extensions"
            f"[{VIDEO_EXT + 'length'!r}]"
        )
    time = _number(r_ext, VIDEO_EXT + "time", "result.extensions")
    time_from = time_to = None
    if verb == "seeked":
        time_from = _number(r_ext, VIDEO_EXT + "time-from", "result.extensions")
        time_to = _number(r_ext, VIDEO_EXT + "time-to", "result.extensions")
        for name, value in (("time-from", time_from), ("time-to", time_to)):
            if value is None:
                raise XapiMappingError(
                    f"verb 'seeked' needs result.extensions[{VIDEO_EXT + name!r}]"
                )
        if time is None:
            time = time_to
    progress = _number(r_ext, VIDEO_EXT + "progress", "result.extensions")
    if progress is not None and 1 < progress <= 100:
        progress = progress / 100  # a percentage, see the module docstring
    segments_raw = r_ext.get(VIDEO_EXT + "played-segments")
    segments = [] if segments_raw is None else parse_played_segments(segments_raw)

    session = _string(c_ext.get(VIDEO_EXT + "session-id")) or _string(context.get("registration"))
    return VideoPlayback(
        event_id=_event_id(statement),
        occurred_at=_timestamp(statement),
        learner_id=_learner_id(statement),
        session_id=session or "xapi",
        client=client,
        course_id=_course_id(statement),
        video_id=_object_id(statement),
        verb=verb,  # type: ignore[arg-type]  # one of _VIDEO_NAMES
        time=time,
        time_from=time_from,
        time_to=time_to,
        length=length,
        played_segments=segments,
        progress=progress,
    )


def _quiz(statement: Mapping[str, Any], verb_iri: str, client: Client) -> QuizResult:
    result = _mapping(statement, "result", "statement.result")
    context = _mapping(statement, "context", "statement.context")
    c_ext = _mapping(context, "extensions", "context.extensions")
    score_obj = _mapping(result, "score", "result.score")
    raw = _number(score_obj, "raw", "result.score")
    max_ = _number(score_obj, "max", "result.score")
    min_ = _number(score_obj, "min", "result.score") or 0.0
    scaled = _number(score_obj, "scaled", "result.score")
    if raw is not None and max_ is not None:
        score, max_score = raw - min_, max_ - min_
    elif scaled is not None:
        score, max_score = scaled, 1.0
    else:
        raise XapiMappingError(
            "quiz statement needs result.score with raw and max, or scaled "
            f"(got result.score = {dict(score_obj)!r})"
        )

    verb = verb_iri.rstrip("/").rsplit("/", 1)[-1]
    success = result.get("success")
    if success is not None and not isinstance(success, bool):
        raise XapiMappingError(f"result.success must be true or false, got {success!r}")
    implied = {"passed": True, "failed": False}.get(verb) if verb_iri in QUIZ_VERB_IRIS else None
    if success is None:
        if implied is None:
            raise XapiMappingError(f"quiz statement with verb {verb!r} needs result.success")
        success = implied
    elif implied is not None and success is not implied:
        raise XapiMappingError(f"verb {verb!r} contradicts result.success = {success}")

    return QuizResult(
        event_id=_event_id(statement),
        occurred_at=_timestamp(statement),
        learner_id=_learner_id(statement),
        session_id=_string(context.get("registration")) or "xapi",
        client=client,
        course_id=_course_id(statement),
        quiz_id=_object_id(statement),
        score=score,
        max_score=max_score,
        passed=success,
        attempt=_attempt(c_ext),
        duration_ms=0 if result.get("duration") is None else parse_duration_ms(result["duration"]),
    )


# --- parsers ---------------------------------------------------------------------------------

_DURATION = re.compile(
    r"^P(?!$)(?:(?P<years>\d+(?:[.,]\d+)?)Y)?(?:(?P<months>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<weeks>\d+(?:[.,]\d+)?)W)?(?:(?P<days>\d+(?:[.,]\d+)?)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+(?:[.,]\d+)?)H)?(?:(?P<minutes>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:[.,]\d+)?)S)?)?$"
)
_UNIT_MS = {"weeks": 604_800_000, "days": 86_400_000, "hours": 3_600_000, "minutes": 60_000}


def parse_duration_ms(value: object) -> int:
    """Milliseconds of an ISO 8601 duration such as ``PT5M12S`` or ``PT1.5S`` (rounded)."""
    if not isinstance(value, str) or not (match := _DURATION.match(value.strip())):
        raise XapiMappingError(
            f"result.duration must be an ISO 8601 duration like 'PT5M12S', got {value!r}"
        )
    parts = {k: Decimal(v.replace(",", ".")) for k, v in match.groupdict().items() if v}
    if "years" in parts or "months" in parts:
        raise XapiMappingError(
            f"result.duration {value!r} uses years or months, which have no fixed length; "
            "use weeks, days, hours, minutes and seconds"
        )
    total = parts.pop("seconds", Decimal(0)) * 1000
    for unit, amount in parts.items():
        total += amount * _UNIT_MS[unit]
    return int(total.to_integral_value())


def parse_played_segments(value: object) -> list[list[float]]:
    """``"0[.]10.5[,]20[.]30"`` -> ``[[0.0, 10.5], [20.0, 30.0]]`` (a list of pairs is kept)."""
    where = f"result.extensions[{VIDEO_EXT + 'played-segments'!r}]"
    if isinstance(value, list):
        pairs: list[list[float]] = []
        for item in value:
            if not (isinstance(item, list | tuple) and len(item) == 2):
                raise XapiMappingError(f"{where}: each segment must be [start, end], got {item!r}")
            pairs.append([_as_float(item[0], where), _as_float(item[1], where)])
        return pairs
    if not isinstance(value, str):
        raise XapiMappingError(f"{where} must be a string like '0[.]10[,]20[.]30'")
    if not value.strip():
        return []
    segments = []
    for part in value.split("[,]"):
        bounds = part.split("[.]")
        if len(bounds) != 2 or not bounds[0].strip() or not bounds[1].strip():
            raise XapiMappingError(
                f"{where}: segment {part!r} is not 'start[.]end' (whole value {value!r})"
            )
        segments.append([_as_float(bounds[0], where), _as_float(bounds[1], where)])
    return segments


# --- fields ----------------------------------------------------------------------------------


def _verb_iri(statement: Mapping[str, Any]) -> str:
    verb = statement.get("verb")
    if not isinstance(verb, Mapping) or not isinstance(verb.get("id"), str) or not verb["id"]:
        raise XapiMappingError("statement.verb.id is missing: every statement needs a verb IRI")
    return str(verb["id"])


def _learner_id(statement: Mapping[str, Any]) -> str:
    actor = statement.get("actor")
    if not isinstance(actor, Mapping):
        raise XapiMappingError("statement.actor is missing: the learner id comes from the actor")
    account = actor.get("account")
    if isinstance(account, Mapping) and _string(account.get("name")):
        return str(account["name"])
    if _string(actor.get("mbox_sha1sum")):
        return str(actor["mbox_sha1sum"])
    mbox = _string(actor.get("mbox"))
    if mbox:
        learner = mbox.removeprefix("mailto:")
        if learner:
            return learner
    if _string(actor.get("openid")):
        return str(actor["openid"])
    raise XapiMappingError(
        "statement.actor needs account.name, mbox_sha1sum, mbox or openid to identify the learner"
    )


def _course_id(statement: Mapping[str, Any]) -> str:
    context = _mapping(statement, "context", "statement.context")
    activities = _mapping(context, "contextActivities", "context.contextActivities")
    for kind in ("parent", "grouping"):
        found = activities.get(kind)
        if isinstance(found, Mapping):  # xAPI 1.0.x allowed a single activity object
            found = [found]
        if isinstance(found, list) and found:
            first = found[0]
            if isinstance(first, Mapping) and _string(first.get("id")):
                return iri_to_id(first["id"])
            raise XapiMappingError(f"context.contextActivities.{kind}[0].id is missing")
    raise XapiMappingError(
        "the course is missing: set context.contextActivities.parent[0].id (or grouping[0].id) "
        "to the course activity IRI"
    )


def _object_id(statement: Mapping[str, Any]) -> str:
    obj = _mapping(statement, "object", "statement.object", required=True)
    if not _string(obj.get("id")):
        raise XapiMappingError("statement.object.id is missing: it names the video or quiz")
    return iri_to_id(obj["id"])


def iri_to_id(iri: str) -> str:
    """The id of an activity IRI: its last path segment, or the whole IRI (see module doc)."""
    parts = urlsplit(iri)
    if parts.query or parts.fragment or not parts.netloc:
        return iri
    segment = parts.path.rstrip("/").rsplit("/", 1)[-1]
    return unquote(segment) if segment else iri


def _event_id(statement: Mapping[str, Any]) -> uuid.UUID:
    given = statement.get("id")
    if given is not None:
        try:
            return uuid.UUID(str(given))
        except ValueError:
            raise XapiMappingError(f"statement.id must be a UUID, got {given!r}") from None
    try:
        canonical = json.dumps(
            statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise XapiMappingError(f"statement is not plain JSON: {exc}") from None
    return uuid.uuid5(STATEMENT_ID_NAMESPACE, canonical)


def _timestamp(statement: Mapping[str, Any]) -> datetime:
    value = statement.get("timestamp")
    if not isinstance(value, str) or not value:
        raise XapiMappingError("statement.timestamp is missing: send an ISO 8601 time with zone")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise XapiMappingError(
            f"statement.timestamp {value!r} is not ISO 8601 (e.g. 2026-11-28T10:03:12.500Z)"
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise XapiMappingError(
            f"statement.timestamp {value!r} has no time zone: add Z or an offset like +01:00"
        )
    return parsed


def _attempt(c_ext: Mapping[str, Any]) -> int:
    value = c_ext.get(ATTEMPT_EXT)
    if value is None:
        return 1
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer():
        return int(value)
    raise XapiMappingError(
        f"context.extensions[{ATTEMPT_EXT!r}] must be a whole number >= 1, got {value!r}"
    )


# --- helpers ---------------------------------------------------------------------------------


def _mapping(
    parent: Mapping[str, Any], key: str, where: str, *, required: bool = False
) -> Mapping[str, Any]:
    value = parent.get(key)
    if value is None:
        if required:
            raise XapiMappingError(f"{where} is missing")
        return {}
    if not isinstance(value, Mapping):
        raise XapiMappingError(f"{where} must be a JSON object, got {type(value).__name__}")
    return value


def _number(parent: Mapping[str, Any], key: str, where: str) -> float | None:
    value = parent.get(key)
    return None if value is None else _as_float(value, f"{where}[{key!r}]")


def _as_float(value: object, where: str) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise XapiMappingError(f"{where} must be a finite number, got {value!r}")
    return number


def _string(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
