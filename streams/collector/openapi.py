"""The collector's OpenAPI document: request bodies from the event models, every status code.

The handlers read raw bodies (so that bad input gets our reasons and a DLQ record, not a
framework error), so the bodies and answers are described here instead of by signatures.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter

from schemas import Event

REF = "#/components/schemas/{model}"

RESULT = {
    "type": "object",
    "required": ["index", "event_id", "status", "reason", "detail"],
    "properties": {
        "index": {"type": "integer", "description": "Position in the request"},
        "event_id": {"type": ["string", "null"]},
        "status": {"enum": ["accepted", "duplicate", "rejected", "failed"]},
        "reason": {
            "enum": ["malformed_json", "unknown_type", "invalid", "delivery_failed", None],
            "description": "Why it was rejected (or failed)",
        },
        "detail": {"type": ["string", "null"], "description": "What to fix"},
    },
}
BATCH = {
    "type": "object",
    "required": ["accepted", "duplicates", "rejected", "results"],
    "properties": {
        "accepted": {"type": "integer"},
        "duplicates": {"type": "integer"},
        "rejected": {"type": "integer"},
        "results": {"type": "array", "items": {"$ref": "#/components/schemas/EventResult"}},
        "error": {"type": "string"},
    },
}
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
}


def _content(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


RESPONSES: dict[str, Any] = {
    "200": {
        "description": "Every event accepted (and confirmed by Kafka)",
        "content": _content("BatchResponse"),
    },
    "207": {
        "description": "Some events rejected; accepted ones are written",
        "content": _content("BatchResponse"),
    },
    "400": {
        "description": "Malformed JSON (kept in the DLQ) or an empty batch",
        "content": _content("Error"),
    },
    "401": {"description": "Missing or unknown API key", "content": _content("Error")},
    "403": {
        "description": "This client's key may not be used from a browser; or a browser "
        "client's key sent an enrollment (enrollments move money: server keys only). The whole "
        "request is refused: nothing of it is written, and no dead letter is kept",
        "content": _content("Error"),
    },
    "413": {
        "description": "Body over 1 MiB or batch over 500 events",
        "content": _content("Error"),
    },
    "415": {"description": "Content-Type is not application/json", "content": _content("Error")},
    "422": {
        "description": "No event accepted; reasons per event",
        "content": _content("BatchResponse"),
    },
    "503": {
        "description": "Kafka did not confirm; retry (Retry-After)",
        "content": _content("BatchResponse"),
    },
}

XAPI_STATEMENT = {
    "type": "object",
    "description": "An xAPI statement (Video Profile verbs, or an assessment result)",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "actor": {"type": "object"},
        "verb": {"type": "object", "properties": {"id": {"type": "string"}}},
        "object": {"type": "object"},
        "result": {"type": "object"},
        "context": {"type": "object"},
        "timestamp": {"type": "string", "format": "date-time"},
    },
    "required": ["actor", "verb", "object"],
}


def _bodies(components: dict[str, Any]) -> dict[str, dict[str, Any]]:
    event_schema = TypeAdapter(Event).json_schema(ref_template=REF, mode="validation")
    components.update(event_schema.pop("$defs", {}))
    components["Event"] = event_schema
    components["EventResult"] = RESULT
    components["BatchResponse"] = BATCH
    components["Error"] = ERROR
    components["XapiStatement"] = XAPI_STATEMENT
    event_ref = {"$ref": "#/components/schemas/Event"}
    xapi_ref = {"$ref": "#/components/schemas/XapiStatement"}
    return {
        "events": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            event_ref,
                            {"type": "array", "items": event_ref, "minItems": 1, "maxItems": 500},
                        ]
                    }
                }
            },
        },
        "xapi": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            xapi_ref,
                            {"type": "array", "items": xapi_ref, "minItems": 1, "maxItems": 500},
                        ]
                    }
                }
            },
        },
    }


CMCD_PARAMETERS = [
    {
        "name": "CMCD",
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": 'CMCD key/value data, e.g. br=3200,bs,sid="…"',
    },
    *[
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
        for name in ("learner_id", "course_id", "video_id", "session_id")
    ],
    *[
        {"name": name, "in": "header", "required": False, "schema": {"type": "string"}}
        for name in ("CMCD-Request", "CMCD-Object", "CMCD-Status", "CMCD-Session")
    ],
]


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = doc.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        bodies = _bodies(schemas)
        components["securitySchemes"] = {
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}
        }
        for path_item in doc["paths"].values():
            for operation in path_item.values():
                kind = operation.pop("x-learnstream-body", None)
                if kind is None:
                    continue
                operation["security"] = [{"apiKey": []}]
                operation["responses"] = RESPONSES
                if kind in bodies:
                    operation["requestBody"] = bodies[kind]
                else:
                    operation["parameters"] = CMCD_PARAMETERS
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
