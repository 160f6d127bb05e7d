"""Bootstrap the models from historical interactions in a CSV file (``learnstream reco replay``).

Each row becomes an :class:`~jobs.reco.core.Interaction` and goes through
:meth:`Recommender.update`, the update path of the live app: scored first (progressive
validation), then learned. With ``--time-col`` the rows are replayed in time order (stable, so
ties keep the file's order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from jobs.reco.core import Interaction, ModelConfig, Recommender


class ReplayError(ValueError):
    """The file cannot be replayed as asked (the message says what to fix)."""


@dataclass(frozen=True)
class Columns:
    user: str
    item: str
    rating: str
    time: str | None = None


def read_interactions(path: Path, cols: Columns) -> list[Interaction]:
    if not path.is_file():
        raise ReplayError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path, dtype={cols.user: str, cols.item: str})
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ReplayError(f"{path}: not a readable CSV file ({exc})") from exc
    wanted = [c for c in (cols.user, cols.item, cols.rating, cols.time) if c]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise ReplayError(
            f"{path}: no column {', '.join(map(repr, missing))}; "
            f"the file has: {', '.join(map(str, frame.columns))}"
        )
    ratings = pd.to_numeric(frame[cols.rating], errors="coerce")
    bad = frame.index[
        ratings.isna() | ~ratings.map(lambda v: math.isfinite(v) if v == v else False)
    ]
    if len(bad):
        raise ReplayError(
            f"{path}: column {cols.rating!r} must hold numbers; row {int(bad[0]) + 2} has "
            f"{frame.loc[bad[0], cols.rating]!r} ({len(bad)} such rows)"
        )
    if frame[[cols.user, cols.item]].isna().any().any():
        row = int(frame.index[frame[[cols.user, cols.item]].isna().any(axis=1)][0]) + 2
        raise ReplayError(f"{path}: row {row} has no {cols.user!r} or {cols.item!r}")
    times = pd.Series(0.0, index=frame.index)
    if cols.time:
        times = _seconds(frame[cols.time], path, cols.time)
        order = times.sort_values(kind="stable").index
        frame, ratings, times = frame.loc[order], ratings.loc[order], times.loc[order]
    return [
        Interaction(str(u), str(i), float(r), float(t))
        for u, i, r, t in zip(frame[cols.user], frame[cols.item], ratings, times, strict=True)
    ]


def _seconds(column: pd.Series, path: Path, name: str) -> pd.Series:
    """Epoch seconds from numbers (taken as epoch seconds) or ISO-8601 timestamps."""
    numeric = pd.to_numeric(column, errors="coerce")
    if numeric.notna().all():
        return numeric.astype(float)
    parsed = pd.to_datetime(column, errors="coerce", utc=True, format="ISO8601")
    if parsed.isna().any():
        row = int(parsed.index[parsed.isna()][0]) + 2
        raise ReplayError(
            f"{path}: column {name!r} must hold epoch seconds or ISO-8601 times; row {row} has "
            f"{column.loc[parsed.index[parsed.isna()][0]]!r}"
        )
    return (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds()


def replay(interactions: list[Interaction], recommender: Recommender | None = None) -> Recommender:
    """Feed every interaction through the live update path; returns the trained models."""
    model = recommender or Recommender(ModelConfig(negatives=0))
    for interaction in interactions:
        model.update(interaction)
    return model
