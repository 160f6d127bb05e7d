"""The course catalogue on ``course.catalog``: load from a file, publish (compacted by id)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from confluent_kafka import Producer
from pydantic import ValidationError

from schemas import Course, to_wire
from schemas.base import readable
from streams.kafka import produce_all
from streams.topics import COURSE_CATALOG


class CatalogError(ValueError):
    """A catalogue file that cannot be loaded, with where and why."""


def load_courses(path: Path) -> list[Course]:
    """Courses from a JSON array, a single JSON object, or JSON Lines (one course per line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"{path}: {exc.strerror}") from exc
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CatalogError(f"{path}: not JSON: {exc}") from exc
        entries = [(f"item {i}", json.dumps(item)) for i, item in enumerate(items)]
    elif stripped.startswith("{") and "\n{" not in stripped:
        entries = [("the object", text)]
    else:
        entries = [
            (f"line {n}", line) for n, line in enumerate(text.splitlines(), 1) if line.strip()
        ]
    courses = []
    for where, raw in entries:
        try:
            courses.append(Course.model_validate_json(raw))
        except ValidationError as exc:
            raise CatalogError(f"{path}, {where}: {describe_course(exc)}") from exc
    ids = [c.course_id for c in courses]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise CatalogError(f"{path}: course ids appear more than once: {duplicates}")
    return courses


def describe_course(error: ValidationError) -> str:
    # Course errors have no union tag in front of their location, unlike events.
    parts = []
    for e in error.errors()[:8]:
        loc = ".".join(str(p) for p in e["loc"]) or "course"
        parts.append(f"{loc}: {readable(e)}")
    return "; ".join(parts)


def publish_catalog(producer: Producer, courses: Iterable[Course]) -> list[str]:
    """Write each course to ``course.catalog`` keyed by course_id, and wait until Kafka has
    confirmed all of them (DeliveryError otherwise). Returns the course ids."""
    records = [(c.course_id.encode(), to_wire(c)) for c in courses]
    produce_all(producer, COURSE_CATALOG.name, records)
    return [key.decode() for key, _ in records]


__all__ = ["CatalogError", "load_courses", "publish_catalog"]
