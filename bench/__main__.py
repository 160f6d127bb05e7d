"""`python -m bench [--only collector|sink|flink|reco|all] …` (what `make bench` runs)."""

from __future__ import annotations

import argparse
import sys

PARTS = ("collector", "sink", "flink", "reco", "settlement", "live", "all")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="The benchmarks; every figure is a ratio to a baseline run side by side.",
    )
    p.add_argument("--only", choices=PARTS, default="all")
    p.add_argument("--events", type=int, default=100_000, help="collector: events per round")
    p.add_argument("--rounds", type=int, default=3, help="collector: rounds per side")
    p.add_argument("--concurrency", type=int, default=16, help="collector: concurrent requests")
    p.add_argument("--sink-events", type=int, default=200_000, help="sink: events produced once")
    p.add_argument("--sink-rounds", type=int, default=2, help="sink: rounds per side")
    p.add_argument("--latency-rate", type=int, default=10_000, help="sink latency: events/s")
    p.add_argument("--latency-seconds", type=int, default=20, help="sink latency: seconds")
    p.add_argument("--profile", action="store_true", help="profile the collector / a sink round")
    p.add_argument("--flink-events", type=int, default=200_000, help="Flink QoS: session reports")
    p.add_argument("--settlements", type=int, default=2_000, help="settlement: batched ones")
    p.add_argument("--single", type=int, default=200, help="settlement: one per transaction")
    p.add_argument("--completions", type=int, default=200, help="settlement latency: records")
    p.add_argument("--live-max", type=int, default=100, help="live: most learners tried")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.events < 1000 or args.sink_events < 1000 or args.flink_events < 1000:
        parser().error("event counts start at 1000")
    only = args.only
    if only in ("collector", "all"):
        from bench import collector

        print(collector.run(args.events, 100, args.rounds, args.concurrency, args.profile).render())
    if only in ("sink", "all"):
        from bench import sink

        result = sink.run(
            args.sink_events,
            args.sink_rounds,
            args.latency_rate,
            args.latency_seconds,
            args.profile,
        )
        print(result.render())
    if only in ("flink", "all"):
        from bench import flink

        print(flink.run(args.flink_events).render())
    if only in ("reco", "all"):
        from bench import reco

        print(reco.run().render())
    if only in ("settlement", "all"):
        from bench import settlement

        print(settlement.run(args.settlements, args.single, completions=args.completions).render())
    if only in ("live", "all"):
        from bench import live

        print(live.run(max_learners=args.live_max))


if __name__ == "__main__":
    main()
