"""``python -m idstitch.delivery SPOOL_DIR [--budget SECONDS]``: one sender run.

The host starts it detached (see ``_spawn``); it prints nothing and exits 0
whatever happened: the outcome is kept in the spool's ``sender.json``.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m idstitch.delivery SPOOL_DIR [--budget SECONDS]", file=sys.stderr)
        return 2
    from ._sender import RUN_BUDGET, run_sender

    budget = RUN_BUDGET
    if len(args) >= 3 and args[1] == "--budget":
        budget = float(args[2])
    run_sender(os.path.abspath(args[0]), budget=budget)
    return 0


if __name__ == "__main__":
    if os.name == "posix":
        # Descriptors the host's own parent passed down (a build tool's pipes) are closed:
        # nothing that waits on them waits for the sender. Nor does it keep the host's
        # working directory busy (a drive the user wants to unmount).
        os.closerange(3, 1 << 16)
        os.chdir("/")
    sys.exit(main())
