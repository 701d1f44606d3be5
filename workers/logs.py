"""How a worker logs: text lines for people, or one JSON object per line for log collectors.

With ``--log-format json`` every line the process logs is a JSON object — the per-trial record, and also
start-up lines, warnings and tracebacks — so a collector (Loki, Elasticsearch, CloudWatch) never meets a
line it cannot parse. Structured fields travel in ``extra={"fields": {...}}`` and become top-level keys.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", **fields, "exception"?}``, one object per line. Floats that
    are not finite become null, so strict JSON parsers (jq, most collectors) accept every line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(_finite(line), default=str)


def configure_logging(*, json_lines: bool, level: int = logging.INFO) -> None:
    """Log to stderr in the chosen format; Python warnings (torch's, for instance) go through logging
    too, so that in JSON mode they arrive as JSON lines rather than bare text."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.captureWarnings(True)
    # httpx logs every request at INFO: a report per epoch would bury the one line per trial. Failed
    # calls are logged by the worker itself.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
