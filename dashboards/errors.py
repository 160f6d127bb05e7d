"""Named errors of the dashboards package."""

from __future__ import annotations

from schemas.errors import LearnstreamError


class DashboardError(LearnstreamError):
    """A dashboard or panel definition is not sound (the message names the panel)."""


class MacroError(DashboardError):
    """A panel's SQL uses a macro or template variable that cannot be expanded: an unknown
    macro, a wrong number of arguments, or a variable the query was not given."""
