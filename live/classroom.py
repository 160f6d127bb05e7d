"""The data channel of a class: chat, in-class quizzes, and quiz answers as ``quiz_result``.

Every message is one JSON object with a ``type``:

- ``{"type": "chat", "text": "…"}`` from anyone goes to everyone else in the room;
- ``{"type": "quiz", "quiz_id": "q1", "question": "…", "choices": ["a", "b"], "answer": 1}``
  from the teacher asks a question (``max_score`` optional, default 1; ``max_attempts``
  optional, default 1); learners get it without the answer;
- ``{"type": "quiz_answer", "quiz_id": "q1", "choice": 1}`` from a learner is graded on the
  server and becomes a ``quiz_result`` event (the learner's id and client, the room's course,
  the attempt number, the time since the question) that passes the collector's validation and is
  written to ``learner.quiz``. An optional ``event_id`` (a UUID) makes a resent answer a
  duplicate: the server answers it with the first verdict and writes nothing, and the same
  ``event_id`` for another learner or quiz is refused. Answers beyond the quiz's
  ``max_attempts`` are refused.

A participant sends at most ``max_messages_per_s`` messages a second (a 5-second window); more
are answered ``{"type": "error", "reason": "rate_limited"}`` and dropped, not dead-lettered.

A message that is not JSON, not an object, of an unknown type or with bad fields is written to
the dead-letter topic with its reason (``malformed_json``, ``unknown_type``, ``invalid``), and
the sender gets ``{"type": "error", "reason": …, "detail": …}``. Answers are acknowledged with
``{"type": "ack", …}`` once Kafka has them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

import orjson

from live.rooms import ROOM_ID as QUIZ_ID
from live.rooms import Participant, Quiz, Room
from schemas import format_utc
from streams.intake import Rejected

if TYPE_CHECKING:
    from live.server import LiveServer

log = logging.getLogger(__name__)
MESSAGE_TYPES = ("chat", "quiz", "quiz_answer")
MAX_CHAT = 2000
RATE_WINDOW_S = 5.0


class Classroom:
    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.tasks: set[asyncio.Task[None]] = set()

    async def drain(self) -> None:
        """Wait for the messages being handled (at shutdown, before the producer closes)."""
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    def received(self, room: Room, who: Participant, message: str | bytes) -> None:
        """aiortc's message callback: handled in a task (writing waits for Kafka)."""
        now = time.monotonic()
        window = [t for t in who.messages if now - t < RATE_WINDOW_S]
        if len(window) >= self.server.settings.max_messages_per_s * RATE_WINDOW_S:
            who.messages = window
            send(who, {"type": "error", "reason": "rate_limited",
                       "detail": "too many messages: slow down (dropped)"})  # fmt: skip
            return
        window.append(now)
        who.messages = window
        task = asyncio.ensure_future(self.handle(room, who, message))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def handle(self, room: Room, who: Participant, message: str | bytes) -> None:
        raw = message.encode() if isinstance(message, str) else message
        try:
            reply = await self._dispatch(room, who, raw)
        except Exception:
            log.exception("data-channel message from %s not handled", who.peer_id)
            reply = {"type": "error", "reason": "internal", "detail": "not handled; retry"}
        if reply is not None:
            send(who, reply)

    async def _dispatch(self, room: Room, who: Participant, raw: bytes) -> dict[str, Any] | None:
        limit = self.server.settings.max_message_bytes
        if len(raw) > limit:
            return await self.reject(who, Rejected("invalid", f"message over {limit} bytes", raw))
        try:
            item = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return await self.reject(who, Rejected("malformed_json", f"not JSON: {exc}", raw))
        if not isinstance(item, dict):
            return await self.reject(who, Rejected("invalid", "a message is a JSON object", raw))
        kind = item.get("type")
        if kind not in MESSAGE_TYPES:
            detail = f"unknown message type {str(kind)[:40]!r}; known: {list(MESSAGE_TYPES)}"
            return await self.reject(who, Rejected("unknown_type", detail, raw))
        problem = _problem(kind, item, who, room)
        if problem is not None:
            return await self.reject(who, Rejected("invalid", f"{kind}: {problem}", raw))
        if kind == "chat":
            broadcast(room, who, {"type": "chat", "from": who.peer_id, "role": who.role,
                                  "text": item["text"]})  # fmt: skip
            return None
        if kind == "quiz":
            quiz = Quiz(
                str(item["quiz_id"]),
                len(item["choices"]),
                int(item["answer"]),
                float(item.get("max_score", 1.0)),
                int(item.get("max_attempts", 1)),
            )
            room.quizzes[quiz.quiz_id] = quiz
            public = {k: item[k] for k in ("quiz_id", "question", "choices")}
            broadcast(room, who, {"type": "quiz", **public})
            return {"type": "ack", "for": "quiz", "quiz_id": quiz.quiz_id}
        return await self.answer(room, who, item, raw)

    async def answer(
        self, room: Room, who: Participant, item: dict[str, Any], raw: bytes
    ) -> dict[str, Any]:
        quiz = room.quizzes[item["quiz_id"]]
        attempt_key = (who.learner_id, quiz.quiz_id)
        # One answer of a learner to a quiz at a time: the attempt number and the resend check
        # must see the answer before.
        lock = room.answering.setdefault(attempt_key, asyncio.Lock())
        async with lock:
            return await self._answer(room, who, quiz, item, raw)

    async def _answer(
        self, room: Room, who: Participant, quiz: Quiz, item: dict[str, Any], raw: bytes
    ) -> dict[str, Any]:
        attempt_key = (who.learner_id, quiz.quiz_id)
        event_id = str(uuid.UUID(item["event_id"])) if item.get("event_id") else None
        if event_id is not None and event_id in room.answers:
            learner, quiz_id, first = room.answers[event_id]
            if (learner, quiz_id) != attempt_key:
                return await self.reject(
                    who, Rejected("invalid", f"event_id {event_id} is another answer's", raw)
                )
            return {**first, "duplicate": True}  # a resend: the first verdict, nothing written
        if room.attempts[attempt_key] >= quiz.max_attempts:
            detail = f"no attempts left on quiz {quiz.quiz_id!r} (at most {quiz.max_attempts})"
            return await self.reject(who, Rejected("invalid", detail, raw))
        correct = item["choice"] == quiz.answer
        received_at = self.server.clock()
        event = {
            "type": "quiz_result",
            "event_id": event_id or str(uuid.uuid4()),
            "occurred_at": format_utc(received_at),
            "learner_id": who.learner_id,
            "session_id": who.session_id,
            "client": who.client.model_dump(mode="json"),
            "course_id": room.course_id,
            "quiz_id": quiz.quiz_id,
            "score": quiz.max_score if correct else 0.0,
            "max_score": quiz.max_score,
            "passed": correct,
            "attempt": room.attempts[attempt_key] + 1,
            "duration_ms": int((time.monotonic() - quiz.asked_at) * 1000),
        }
        checked = self.server.intake.check(event, received_at, raw)
        result = await self.server.write([checked], who.client_id)
        verdict = result["results"][0]
        ack = {"type": "ack", "for": "quiz_answer", "quiz_id": quiz.quiz_id, "correct": correct,
               **verdict}  # fmt: skip
        if verdict["status"] == "accepted":
            room.attempts[attempt_key] += 1
            room.answers[verdict["event_id"]] = (who.learner_id, quiz.quiz_id, ack)
            if room.teacher is not None:
                send(room.teacher, {"type": "answer", "peer_id": who.peer_id,
                                    "quiz_id": quiz.quiz_id, "correct": correct})  # fmt: skip
        return ack

    async def reject(self, who: Participant, rejected: Rejected) -> dict[str, Any]:
        """Dead-letter a bad message (with its reason) and tell the sender why."""
        result = await self.server.write([rejected], who.client_id)
        verdict = result["results"][0]
        return {"type": "error", "reason": rejected.reason, "detail": rejected.detail,
                "dead_lettered": verdict["status"] == "rejected"}  # fmt: skip


def _problem(kind: str, item: dict[str, Any], who: Participant, room: Room) -> str | None:
    """What is wrong with a message of a known type, or None."""
    if kind == "chat":
        text = item.get("text")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_CHAT:
            return f"text must be a non-empty string of at most {MAX_CHAT} characters"
        return None
    if kind == "quiz":
        if who.role != "teacher":
            return "only the teacher asks quizzes"
        if room.course_id is None:
            return "the room has no course_id: create it with one to run quizzes"
        choices, answer = item.get("choices"), item.get("answer")
        if not isinstance(item.get("quiz_id"), str) or not QUIZ_ID.match(item["quiz_id"]):
            return "quiz_id must be 1-128 letters, digits and _.:-"
        if item["quiz_id"] in room.quizzes:
            return f"quiz {item['quiz_id']!r} was already asked in this room: use a new quiz_id"
        attempts = item.get("max_attempts", 1)
        if not isinstance(attempts, int) or isinstance(attempts, bool) or not 1 <= attempts <= 10:
            return "max_attempts must be 1 to 10"
        if not isinstance(item.get("question"), str):
            return "question must be a string"
        if not isinstance(choices, list) or not 2 <= len(choices) <= 10:
            return "choices must be a list of 2 to 10 answers"
        if not _index(answer, len(choices)):
            return "answer must be the index of the right choice"
        max_score = item.get("max_score", 1.0)
        if not isinstance(max_score, int | float) or isinstance(max_score, bool) or max_score <= 0:
            return "max_score must be a number > 0"
        return None
    if who.role != "learner":
        return "only learners answer quizzes"
    quiz_id = item.get("quiz_id")
    quiz = room.quizzes.get(quiz_id) if isinstance(quiz_id, str) else None
    if quiz is None:
        return f"no quiz {str(item.get('quiz_id'))[:64]!r} was asked in this room"
    if not _index(item.get("choice"), quiz.choices):
        return f"choice must be an index from 0 to {quiz.choices - 1}"
    event_id = item.get("event_id")
    if event_id is not None:
        try:
            uuid.UUID(str(event_id))
        except ValueError:
            return "event_id must be a UUID"
    return None


def _index(value: object, size: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < size


def send(who: Participant, message: dict[str, Any]) -> None:
    channel = who.channel
    if channel is not None and channel.readyState == "open":
        channel.send(orjson.dumps(message).decode())


def broadcast(room: Room, sender: Participant, message: dict[str, Any]) -> None:
    for other in room.participants:
        if other is not sender:
            send(other, message)
