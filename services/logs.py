"""Structured logging: JSON lines when not on a terminal, readable lines when on one.

Every line a process writes goes through one handler on the standard library's root logger,
formatted by structlog's ``ProcessorFormatter``: structlog's own lines and the libraries'
(aiokafka, uvicorn, psycopg, FastStream) alike, warnings and an uncaught exception included.
"""

from __future__ import annotations

import logging
import sys
from types import TracebackType

import structlog


def configure_logging(level: str = "INFO", log_format: str = "auto") -> None:
    """Configure structlog and the standard library (aiokafka, uvicorn) to emit alike."""
    as_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # FastStream gives its application logger a handler of its own (a coloured text line)
    # and stops it propagating, at import; its brokers' logger is passed in
    # (``runtime.kafka.broker_logger``) so that it never gets one. Both go to the root.
    import faststream  # noqa: F401 - creates the logger this undoes

    for name in ("faststream", "faststream.access", "faststream.access.kafka"):
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True
        library.setLevel(logging.NOTSET)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    # aiokafka logs every reconnect attempt at ERROR while a broker is down; that is noise
    # next to our own "cannot reach Kafka" lines.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))


def _log_uncaught(
    kind: type[BaseException], error: BaseException, traceback: TracebackType | None
) -> None:
    """An exception that ends the process is logged like every other line (not printed)."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, traceback)
        return
    logging.getLogger("switchboard").critical(
        "uncaught exception", exc_info=(kind, error, traceback)
    )
