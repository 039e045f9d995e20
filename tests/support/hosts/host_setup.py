"""What both host apps share: the stitch, from the environment the tests set.

``HOST_STATE`` (the state dir), ``HOST_URL`` (the capture server; the events are
delivered in this process as the run ends), ``HOST_WIRED`` (``0``: the app is
left as its author wrote it, not instrumented), ``HOST_NOTICE`` (the notice
given to ``instrument``), ``HOST_OPEN_NOTICE`` (the one given to ``open``),
``HOST_NOTICE_FIRST`` (``1``: ``notice_before_sending``).
"""

from __future__ import annotations

import os
import signal
import threading

import idstitch

# Ctrl-C as a shell gives it to a CLI, whatever the test process left its children: a
# SIGINT ignored or blocked there would be ignored or blocked here too (both survive exec).
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

stitch = idstitch.open(
    state_dir=os.environ["HOST_STATE"],
    sink=idstitch.SpoolSink(
        "phc_test", host=os.environ["HOST_URL"], delivery="in_process", in_process_bound=30.0
    ),
    opt_out_vars=("HOST_NO_TELEMETRY",),
    notice=os.environ.get("HOST_OPEN_NOTICE"),
    notice_before_sending=os.environ.get("HOST_NOTICE_FIRST") == "1",
)
WIRED = os.environ.get("HOST_WIRED", "1") == "1"
#: How long a run may deliver its events in process as it ends: long, so that a loaded
#: machine (a slow import of the client) cannot end a run before its event was sent.
FLUSH = 30.0
NOTICE = os.environ.get("HOST_NOTICE")


def interrupt_soon() -> None:
    """Ctrl-C, for real: SIGINT to this process in a moment (while it waits at a prompt)."""
    # To the main thread itself: a SIGINT sent to the process may be taken by another thread
    # (the client's), and then never wakes the main thread from its blocking read.
    main = threading.main_thread().ident
    assert main is not None
    timer = threading.Timer(0.2, signal.pthread_kill, (main, signal.SIGINT))
    timer.daemon = True
    timer.start()


def interrupt_now() -> None:
    """Ctrl-C, for real, in the middle of a command's work."""
    # To this thread: delivered before pthread_kill returns, so KeyboardInterrupt is raised
    # before pause. Sent to the process, another thread could take it, and pause would wait
    # for ever.
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)
    signal.pause()
