"""The learner simulator: a course catalogue, deterministic learner journeys, and sending them.

``build_catalog(cfg)`` makes the courses; ``Simulation(cfg, catalog)`` plans every learner's
journeys (browse, enroll, watch with pauses, seeks and re-watches, quizzes; complete or drop out)
and iterates the events, and with ``bad_fraction`` the bad payloads, in time order (a few
learners, ``immersive_fraction``, take their lessons in a VR headset and report
``immersive_qos``). ``run_simulation`` sends them: the catalogue to Kafka, then the events
through the collector (HTTP) or straight to Kafka.

Determinism: every draw comes from a ``random.Random`` seeded from ``(seed, purpose)``, never the
global generator or the wall clock. Ids are UUIDv5 over ``(run_id, semantic key)``, so the same
seed, run id and start give byte-identical events, and another run id never reuses an id.

Time: each learner's journeys are drafted on a natural clock (media seconds, page dwell, quiz
time), then compressed into ``[start, start + duration]``: a learner's events are strictly
increasing in milliseconds, and a pay-by-completion journey ends before 0.8 x its deadline.
The number of journeys follows ``rate``: every learner makes one; more are added, round-robin,
until about ``rate x duration`` events exist (``rate = 0``: one journey each).

Modules (all but ``send`` pure, no I/O):

- :mod:`~streams.simulate.config`: ``SimConfig``, the world (regions, edge nodes, networks,
  platforms), ``topology``, the seeded random generators;
- :mod:`~streams.simulate.catalog`: the course catalogue and derived addresses;
- :mod:`~streams.simulate.qos`: playback start and session QoS, and immersive (VR) lesson QoS;
- :mod:`~streams.simulate.activities`: a learner's state and the events of each activity
  (page views, video playback, quizzes);
- :mod:`~streams.simulate.journeys`: a learner's course journeys, from browsing to completion
  or dropout;
- :mod:`~streams.simulate.simulation`: ``Simulation``, laying every journey out in time, and the
  bad payloads;
- :mod:`~streams.simulate.send`: sending to Kafka or the collector, paced by wall-clock;
- :mod:`~streams.simulate.report`: ``SimReport`` and the progress bar.
"""

from __future__ import annotations

from streams.simulate.catalog import build_catalog, derived_address
from streams.simulate.config import (
    EDGE_IDS,
    HEADSETS,
    NETWORKS,
    REGIONS,
    Edge,
    SimConfig,
    new_run_id,
    sim_config_from_args,
    topology,
)
from streams.simulate.journeys import Journey
from streams.simulate.qos import Start, sample_immersive_qos, sample_session_qos, sample_start
from streams.simulate.report import SimReport
from streams.simulate.send import (
    HttpSender,
    Pacer,
    SimulationError,
    run_simulation,
    send_http,
    send_kafka,
    timestamp_ms,
)
from streams.simulate.simulation import (
    BAD_KINDS,
    BadPayload,
    SimEvent,
    SimItem,
    Simulation,
    generate,
)

__all__ = [
    "BAD_KINDS", "EDGE_IDS", "HEADSETS", "NETWORKS", "REGIONS", "BadPayload", "Edge",
    "HttpSender", "Journey", "Pacer", "SimConfig", "SimEvent", "SimItem", "SimReport",
    "Simulation", "SimulationError", "Start", "build_catalog", "derived_address", "generate",
    "new_run_id", "run_simulation", "sample_immersive_qos", "sample_session_qos", "sample_start",
    "send_http", "send_kafka", "sim_config_from_args", "timestamp_ms", "topology",
]  # fmt: skip
