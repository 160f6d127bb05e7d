"""JSON Schema of every wire type, exported into ``schemas/json/`` (a test keeps it current).

Run ``python -m schemas.export`` (or ``learnstream schemas export``) after changing a model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from schemas.catalog import Course
from schemas.derived import CompletionScore, CourseCompleted, PipelineMetrics, Qos1m, RecoReport
from schemas.dlq import DeadLetter, ReplayMarker
from schemas.events import EVENT_TYPES, Event
from schemas.settlement import SettlementReceipt

JSON_DIR = Path(__file__).resolve().parent / "json"
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
BASE_URI = "https://learnstream.dev/schemas/v1/"


def schemas() -> dict[str, dict[str, Any]]:
    """{file name: JSON Schema} for each event type, the union, the catalogue, the DLQ and the
    derived records other services read (QoS minutes, pipeline and reco metrics, completion
    scores and completions, settlement receipts)."""
    out: dict[str, dict[str, Any]] = {}
    models: dict[str, type[BaseModel]] = {
        **EVENT_TYPES,
        "course": Course,
        "dead_letter": DeadLetter,
        "replay_marker": ReplayMarker,
        "qos_1m": Qos1m,
        "pipeline_metrics": PipelineMetrics,
        "reco_report": RecoReport,
        "completion_score": CompletionScore,
        "course_completed": CourseCompleted,
        "settlement_receipt": SettlementReceipt,
    }
    for name, model in models.items():
        schema = model.model_json_schema(mode="validation")
        out[f"{name}.json"] = {"$id": f"{BASE_URI}{name}.json", **schema}
    union = TypeAdapter(Event).json_schema(mode="validation")
    out["event.json"] = {"$id": f"{BASE_URI}event.json", "title": "Event", **union}
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def export(directory: Path = JSON_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas().items():
        path = directory / name
        path.write_text(render(schema))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in export():
        print(path)
