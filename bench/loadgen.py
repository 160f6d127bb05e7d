"""Load generator, in a process of its own: POST every batch of a workload file, concurrently.

Usage: python -m bench.loadgen URL KEY FILE CONCURRENCY
Prints one JSON line: {"events": n, "seconds": s, "statuses": {...}}.
"""

from __future__ import annotations

import asyncio
import collections
import json
import sys
import time

import aiohttp


async def run(url: str, key: str, path: str, concurrency: int) -> dict[str, object]:
    with open(path, "rb") as f:
        bodies = [line.rstrip(b"\n") for line in f if line.strip()]
    events = sum(body.count(b'"event_id"') for body in bodies)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    statuses: collections.Counter[int] = collections.Counter()
    headers = {"Content-Type": "application/json", "X-API-Key": key}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    statuses[response.status] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return {"events": events, "seconds": seconds, "statuses": dict(statuses)}


def main() -> None:
    url, key, path, concurrency = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    print(json.dumps(asyncio.run(run(url, key, path, concurrency))), flush=True)


if __name__ == "__main__":
    main()
