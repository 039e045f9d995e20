"""What the forked and spawned processes of the reliability tests run.

Importing this module imports everything a writer needs (the service, the
log, the pydantic models, the live machine), so a forkserver that preloads
it forks children that start writing at once.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
import traceback
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier

from idstitch.adapters.sinks import NullSink
from idstitch.machine import IdentityStitch

from support.workers import write_snapshots

__all__ = ["FAILED", "churn", "write_snapshots_reporting"]

# Loaded here so that a forkserver preloading this module has it: the file log (with
# the codec and the record check), lazy in the service.
for _name in ("idstitch.store._log",):
    importlib.import_module(_name)

#: Exit code of a worker that raised something other than an ``OSError``.
FAILED = 99


def write_snapshots_reporting(path: str, writer: int, count: int, start: Barrier) -> None:
    """:func:`workers.write_snapshots`; exit with the errno of an ``OSError`` (ENOENT is 2)."""
    try:
        write_snapshots(path, writer, count, start)
    except OSError as exc:
        traceback.print_exc()
        sys.exit(exc.errno or errno.EIO)
    except Exception:  # noqa: BLE001 - any other failure is reported by its own exit code
        traceback.print_exc()
        sys.exit(FAILED)


def churn(state_dir: str, report: Connection, tag: int) -> None:
    """Open the state dir and change the identity until killed, reporting every change.

    Each report is ``(seq, h, persisting)`` of the identity right after a
    change returned (its record appended and fsynced, its snapshot
    replaced), sent before the next change starts. The first report is
    the identity as opened.
    """
    stitch = IdentityStitch.open(state_dir=state_dir, runtime="persistent", sink=NullSink(), env={})

    def tell() -> None:
        identity = stitch.identity
        report.send((identity.seq, identity.h, stitch.persisting))

    tell()
    n = 0
    while True:
        stitch.login(f"user-{tag}-{n}-{os.getpid()}")
        tell()
        stitch.logout()
        tell()
        n += 1
