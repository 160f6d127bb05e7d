"""Learner event models (pydantic v2): envelope, one class per event type, JSON Schema export."""
