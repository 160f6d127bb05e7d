"""Per-client API keys, stored as SHA-256 digests and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping


def hash_key(key: str) -> str:
    """The stored form of an API key: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    """A new random API key (256 bits, URL-safe)."""
    return "lsk_" + secrets.token_urlsafe(32)


class KeyRing:
    """Which client a presented key belongs to. Every stored digest is compared, whatever
    matches, so the time taken does not tell which client (or how much of a key) matched."""

    def __init__(self, api_keys: Mapping[str, str]) -> None:
        self._digests = [(client, digest.encode()) for client, digest in api_keys.items()]

    def client_for(self, key: str | None) -> str | None:
        if not key:
            return None
        presented = hash_key(key).encode()
        found = None
        for client, digest in self._digests:
            if hmac.compare_digest(presented, digest):
                found = client
        return found

    def __bool__(self) -> bool:
        return bool(self._digests)


def key_from_headers(headers: Mapping[str, str]) -> str | None:
    """``X-API-Key: <key>`` or ``Authorization: Bearer <key>``."""
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return None
