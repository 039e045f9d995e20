"""A small host CLI that sends through the spool, for the delivery tests.

    python delivery_host.py STATE_DIR CAPTURE_URL [STEP ...]

Steps: ``response:<user>``, ``login:<user>``, ``logout``, ``capture:<event>``,
``events:<n>`` (n captures named ``e0``...). It runs them inside
``stitch.command("run")`` (so ``cli_command_executed`` is sent at exit and the
sender started), then prints one JSON line: the spool folder, the delivery
mode, the senders started, which of the heavy packages were imported, and
how long leaving the command took (``exit_seconds``: the command's event and
the hand-over to the sender, or the bounded in-process delivery).

Environment: ``HOST_RUNTIME`` (default ``persistent``); ``HOST_DELIVERY``
(``auto``, ``detached``, ``in_process``); ``HOST_MAX_BYTES``;
``HOST_SENDER_BUDGET`` (seconds, default 2: a test's offline sender gives up
soon); ``HOST_ROOT`` (the filesystem root runtime detection looks under);
``HOST_FSIZE_LIMIT`` (bytes: no file may grow past it, as on a full disk);
``DO_NOT_TRACK`` as usual.
"""

from __future__ import annotations

import json
import os
import sys
import time

from idstitch.adapters.sinks import SpoolSink
from idstitch.machine import IdentityStitch

HEAVY = ("posthog", "pydantic", "transitions", "orjson", "subprocess", "requests", "uuid")


def limit_file_size(limit: int | None) -> None:
    """As on a full disk: writes past ``limit`` bytes fail with EFBIG (``None``: no limit)."""
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft = resource.RLIM_INFINITY if limit is None else limit
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, resource.RLIM_INFINITY))


def main() -> int:
    state_dir, url, *steps = sys.argv[1:]
    limit = os.environ.get("HOST_FSIZE_LIMIT")
    if limit:
        limit_file_size(int(limit))
    runtime = os.environ.get("HOST_RUNTIME")
    sink = SpoolSink(
        "phc_test",
        host=url,
        delivery=os.environ.get("HOST_DELIVERY", "auto"),
        max_bytes=int(os.environ.get("HOST_MAX_BYTES", str(10 * 1024 * 1024))),
        sender_budget=float(os.environ.get("HOST_SENDER_BUDGET", "2")),
    )
    stitch = IdentityStitch.open(
        state_dir=state_dir,
        runtime=runtime or "persistent",
        sink=sink,
        root=os.environ.get("HOST_ROOT", "/"),
    )
    captured: list[bool] = []
    with stitch.command("run"):
        for step in steps:
            name, _, arg = step.partition(":")
            if name == "response":
                stitch.observe_authenticated_response(arg)
            elif name == "login":
                stitch.login(arg)
            elif name == "logout":
                stitch.logout()
            elif name == "capture":
                captured.append(stitch.capture(arg, {"step": step}))
            elif name == "events":
                for index in range(int(arg)):
                    stitch.capture(f"e{index}", {"index": index})
        leaving = time.monotonic()
    exit_seconds = time.monotonic() - leaving
    if limit:  # lifted before the exit, so that what runs then (coverage saving) may write
        limit_file_size(None)
    report = {
        "folder": sink.folder,
        "mode": sink.mode,
        "senders": sink.sender_pids,
        "imported": sorted(name for name in HEAVY if name in sys.modules),
        "distinct_id": stitch.distinct_id,
        "captured": captured,
        "exit_seconds": exit_seconds,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
