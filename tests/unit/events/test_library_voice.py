"""The library's voice: messages go to the ``idstitch`` loggers, which hold one NullHandler so
that nothing reaches the host's terminal unless the host configures logging."""

from __future__ import annotations

import logging

import pytest
from idstitch.events._voice import ROOT_LOGGER, debug, get_logger, warn


def _null_handlers() -> list[logging.Handler]:
    """The NullHandlers on the package's logger."""
    root = logging.getLogger(ROOT_LOGGER)
    return [handler for handler in root.handlers if isinstance(handler, logging.NullHandler)]


def test_get_logger_gives_the_named_logger_under_one_null_handler() -> None:
    """get_logger returns logging's own logger of that name (``idstitch`` by default), and the
    package's logger then holds exactly one NullHandler, however often it is asked."""
    loggers = [get_logger("idstitch.store"), get_logger(), get_logger("idstitch.store")]
    store, package = logging.getLogger("idstitch.store"), logging.getLogger("idstitch")
    assert ([store, package, store], 1) == (loggers, len(_null_handlers()))


def test_a_host_that_removes_the_null_handler_is_not_overruled() -> None:
    """The NullHandler is put in place once per process: a host that takes it away (to see
    idstitch's warnings through logging's last resort) does not get it back on the next message."""
    get_logger()
    removed = _null_handlers()
    root = logging.getLogger(ROOT_LOGGER)
    for handler in removed:
        root.removeHandler(handler)
    try:
        get_logger("idstitch.store")
        assert [] == _null_handlers()
    finally:
        for handler in removed:
            root.addHandler(handler)


def test_messages_reach_a_host_that_listens(caplog: pytest.LogCaptureFixture) -> None:
    """debug and warn log ``message % args`` at their level on the named logger once the host
    listens (logging is imported and a handler is configured)."""
    with caplog.at_level(logging.DEBUG, logger=ROOT_LOGGER):
        debug("idstitch.store", "read %d records from %s", 3, "identity.jsonl")
        warn("idstitch.service", "kept %s aside", "identity.jsonl.damaged-1")
    expected = [
        ("idstitch.store", logging.DEBUG, "read 3 records from identity.jsonl"),
        ("idstitch.service", logging.WARNING, "kept identity.jsonl.damaged-1 aside"),
    ]
    assert expected == caplog.record_tuples
