"""What every part's settings class shares (the classes themselves live with their parts).

Each part owns one pydantic model for its section (``streams.settings.KafkaSettings``,
``sinks.clickhouse.settings.ClickHouseSettings``, ...); ``learnstream.settings`` composes them
into the one ``Settings`` read from ``LEARNSTREAM_<SECTION>__<FIELD>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, ConfigDict

# A section is data: unknown fields are errors and defaults are validated like values.
SECTION = ConfigDict(validate_default=True, extra="forbid")


def _absolute(value: Path) -> Path:
    return value if value.is_absolute() else Path.cwd() / value


# A folder or file that defaults to a place under the working directory (never under the
# installed package): made absolute when the settings are read, so that child processes started
# elsewhere see the same place.
WorkPath = Annotated[Path, AfterValidator(_absolute)]
