"""Settlement: `learnstream settlement deploy | index | reconcile | show` (the sink is
`learnstream sinks settlement`; see docs/settlement.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from learnstream.cli.common import log_to_stderr, require
from learnstream.settings import get_settings

settlement_app = typer.Typer(
    help="The pay-by-completion escrow on the chain.", no_args_is_help=True
)


@settlement_app.command("deploy")
def settlement_deploy(
    stablecoin: Annotated[
        bool | None,
        typer.Option(
            help="Also deploy the 6-decimal test stablecoin; default: only on the local chain "
            "(31337)."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Deploy anew even if this chain has a recorded escrow.")
    ] = False,
) -> None:
    """Deploy CourseEscrow and record its address in the settlement state folder.

    Idempotent: with an escrow already recorded for this chain (and code at its address) it
    prints that one and deploys nothing, unless --force."""
    from settlement import contract

    settings = get_settings()
    require(settings, chain=True)
    w3 = contract.connect(settings.chain.rpc_url)
    existing = contract.Deployment.load(settings.settlement.state_dir, w3.eth.chain_id)
    if existing is not None and not force and w3.eth.get_code(existing.escrow):
        typer.echo(f"already deployed on chain {existing.chain_id}: escrow {existing.escrow}")
        if existing.stablecoin:
            typer.echo(f"test stablecoin (tUSD, 6 decimals): {existing.stablecoin}")
        return
    local = w3.eth.chain_id == contract.LOCAL_CHAIN_ID
    if stablecoin is None:
        stablecoin = local
    if stablecoin and not local:
        raise typer.BadParameter(
            f"chain {w3.eth.chain_id} is not the local chain ({contract.LOCAL_CHAIN_ID}): the "
            "test stablecoin (anyone may mint it) is for local chains only"
        )
    if existing is not None and not w3.eth.get_code(existing.escrow):
        void = contract.void_stale_state(settings.settlement.state_dir, existing.chain_id)
        if void is not None:
            typer.echo(
                f"no escrow at {existing.escrow} any more (a fresh chain): the old "
                f"chain's sender store and indexer state moved to {void}"
            )
    roles = contract.Roles.from_settings(settings.chain, settings.settlement)
    record = contract.deploy(w3, roles, settings.settlement.state_dir, stablecoin=stablecoin)
    typer.echo(f"escrow {record.escrow} on chain {record.chain_id} at block {record.block}")
    if record.stablecoin:
        typer.echo(f"test stablecoin (tUSD, 6 decimals): {record.stablecoin}")
    typer.echo(
        f"roles: admin {record.admin}, oracle {record.oracle}, pauser {record.pauser}, "
        f"treasury {record.treasury}"
    )
    typer.echo(
        f"recorded in {contract.Deployment.path(settings.settlement.state_dir, record.chain_id)}"
    )


@settlement_app.command("index")
def settlement_index(
    once: Annotated[bool, typer.Option(help="Index what is confirmed now, then exit.")] = False,
) -> None:
    """Publish every log of the escrow to settlement.receipts once its block is behind the
    confirmation depth (LEARNSTREAM_SETTLEMENT__CONFIRMATIONS); reorganisations deeper than
    the depth are detected and reported."""
    import signal
    import threading

    from learnstream.wiring import receipts_indexer

    log_to_stderr()
    settings = get_settings()
    require(settings, kafka=True, chain=True)
    indexer = receipts_indexer(settings)
    try:
        if once:
            typer.echo(
                f"published {indexer.step()} receipts through block {indexer.state.next_block - 1}"
            )
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        indexer.run(stop, settings.settlement.index_poll_s)
    finally:
        indexer.close()


@settlement_app.command("reconcile")
def settlement_reconcile(
    start: Annotated[
        str | None, typer.Option("--from", help="Period start: ISO time (Z) or 30m/6h/2d back.")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="Period end (exclusive).")] = None,
) -> None:
    """Compare the chain's logs with settlement.receipts, the settlements table and the
    completion records; report matched, missing on-chain, missing off-chain, amount or metric
    mismatches and reorganised blocks; record the run in `reconciliations`. Exits 1 on any
    discrepancy."""
    from learnstream.cli.common import since
    from settlement import contract
    from sinks.clickhouse.client import connect
    from sinks.clickhouse.migrate import migrate
    from sinks.settlement.reconcile import Reconciler
    from streams.topics import SETTLEMENT_RECEIPTS

    settings = get_settings()
    require(settings, kafka=True, clickhouse=True, chain=True)
    s = settings.settlement
    w3 = contract.connect(settings.chain.rpc_url)
    client = connect(settings.clickhouse.dsn)
    migrate(client, settings.clickhouse.raw_ttl_days, settings.clickhouse.dlq_ttl_days)
    report = Reconciler(
        w3,
        contract.escrow_address(w3, s),
        contract.logs_start(w3, s),
        s.confirmations,
        settings.kafka.bootstrap_servers,
        SETTLEMENT_RECEIPTS.name,
        client,
        s.state_dir,
        s.settle_delay_s,
    ).run(since(start), since(end))
    typer.echo(report.render())
    if not report.ok:
        raise typer.Exit(1)


@settlement_app.command("show")
def settlement_show(
    enrollment: Annotated[str, typer.Argument(help="The enrollment id (its event_id, a UUID).")],
    as_json: Annotated[bool, typer.Option("--json", help="The trail as JSON.")] = False,
) -> None:
    """An enrollment's whole trail: the enrollment, its scores and completion, the escrow and
    its pinned terms, every log and transaction, the payees' credits and the service's
    intents."""
    import json
    import uuid

    from settlement import contract
    from sinks.clickhouse.client import connect
    from sinks.settlement.trail import trail

    try:
        enrollment_id = uuid.UUID(enrollment)
    except ValueError as exc:
        raise typer.BadParameter(f"{enrollment!r} is not an enrollment id (a UUID)") from exc
    settings = get_settings()
    require(settings, clickhouse=True, chain=True)
    s = settings.settlement
    w3 = contract.connect(settings.chain.rpc_url)
    roles = contract.Roles.from_settings(settings.chain, s)
    found = trail(
        enrollment_id,
        w3,
        contract.escrow_address(w3, s),
        contract.logs_start(w3, s),
        connect(settings.clickhouse.dsn),
        s.state_dir,
        roles.oracle.address,
        roles.treasury,
    )
    if as_json:
        typer.echo(json.dumps(found, indent=2, default=str))
        return
    for section, value in found.items():
        if isinstance(value, list):
            typer.echo(f"{section}: {len(value)}")
            for item in value:
                typer.echo("  " + ", ".join(f"{k}={v}" for k, v in item.items()))
        elif isinstance(value, dict):
            typer.echo(f"{section}: " + ", ".join(f"{k}={v}" for k, v in value.items()))
        else:
            typer.echo(f"{section}: {value}")
