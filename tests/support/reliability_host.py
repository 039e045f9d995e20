"""A small host CLI for the reliability tests (R14, R15): its own work, with idstitch wired in.

    python reliability_host.py STATE_DIR [STEP ...]

``STATE_DIR`` ``@default`` lets idstitch choose the app's default dir (from
``HOME``/``XDG_STATE_HOME``). Steps: ``login:<user>``, ``response:<user>``,
``logout``, ``clear``, ``capture:<event>``. The host prints one line per
step (its own work), then one JSON line with what idstitch ended up with,
and exits 0: any other exit code or a traceback means telemetry broke it.

Environment: ``HOST_CAPTURE_URL`` sends through the real ``PostHogSink`` to
that server (else ``NullSink``); ``HOST_RUNTIME`` (default ``persistent``);
``HOST_LOG_LEVEL`` (default ``WARNING``, logging to stderr);
``HOST_INJECT_ENOSPC=N`` makes ``os.write`` fail with ENOSPC on files of
the state dir after N writes. The last is used only where a real full disk
(a small tmpfs) cannot be mounted, and the tests say so.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sys
from typing import Any


def _inject_enospc(state_dir: str, allowed: int) -> None:
    """Fail every write to a file of ``state_dir`` with ENOSPC once ``allowed`` writes went by."""
    real_write = os.write
    prefix = os.path.realpath(state_dir) + os.sep
    left = [allowed]

    def write(fd: int, data: Any) -> int:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if target.startswith(prefix):
            if left[0] <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            left[0] -= 1
        return real_write(fd, data)

    os.write = write


def main(argv: list[str]) -> int:
    """Open the identity, run the steps inside one command, report, exit 0."""
    logging.basicConfig(level=os.environ.get("HOST_LOG_LEVEL", "WARNING"), stream=sys.stderr)
    folder, steps = argv[0], argv[1:]
    if "HOST_INJECT_ENOSPC" in os.environ and folder != "@default":
        _inject_enospc(folder, int(os.environ["HOST_INJECT_ENOSPC"]))

    from idstitch.adapters.sinks import NullSink, PostHogSink
    from idstitch.machine import IdentityStitch

    url = os.environ.get("HOST_CAPTURE_URL")
    sink = PostHogSink("phc_hostcli_test_key", host=url) if url else NullSink()
    stitch = IdentityStitch.open(
        app="hostcli" if folder == "@default" else None,
        state_dir=None if folder == "@default" else folder,
        runtime=os.environ.get("HOST_RUNTIME", "persistent"),
        sink=sink,
        opt_out_vars=("HOSTCLI_NO_TELEMETRY",),
    )
    with stitch.command("work"):
        for step in steps:
            action, _, arg = step.partition(":")
            if action == "login":
                stitch.login(arg)
            elif action == "response":
                stitch.observe_authenticated_response(arg)
            elif action == "logout":
                stitch.logout()
            elif action == "clear":
                stitch.clear_distinct_id()
            elif action == "capture":
                stitch.capture(arg)
            else:
                print(f"host: unknown step {step!r}", file=sys.stderr)
                return 2
            print(f"host: {step} done")
    report = {
        "distinct_id": stitch.distinct_id,
        "device_id": stitch.device_id,
        "state": stitch.state.value,
        "persisting": stitch.persisting,
        "opted_out": stitch.opted_out,
        "state_dir": stitch.state_dir,
    }
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
