"""The chain's JSON-RPC node: reachability (the chain client of the settlement issue grows
here)."""

from __future__ import annotations

import httpx

from schemas.errors import ChainUnreachable


def chain_id(rpc_url: str, timeout: float = 5.0) -> int:
    """The node's chain id (``eth_chainId``); :class:`ChainUnreachable` when it does not
    answer as a JSON-RPC node."""
    try:
        reply = httpx.post(
            rpc_url,
            json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
            timeout=timeout,
        ).json()
        return int(reply["result"], 16)
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise ChainUnreachable(rpc_url, "no JSON-RPC answer to eth_chainId") from exc
