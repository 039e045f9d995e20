"""A deliberately wrong conformance driver, to prove the runner catches one.

Run by path: ``python broken_driver.py DEFECT``. It is idstitch's own driver
with one defect, in what it reports (``alias-twice``: every accepted user
event reports an alias, as an implementation without the R3 gate would send
one) or on the wire (``reversed-alias``: the ``$create_alias`` goes out with
the device as ``distinct_id``, the direction posthog-wire.md warns about).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from idstitch.conformance.driver import Driver


def main(defect: str) -> int:
    driver = Driver()
    for line in sys.stdin:
        request = json.loads(line)
        reply: dict[str, Any] = driver.handle(request)
        if request["op"] == "open" and defect == "reversed-alias":
            sink = driver.sink
            assert sink is not None
            assert sink.inner is not None
            client = sink.inner._posthog()

            def reversed_alias(user_id: str, device_id: str, client: Any = client) -> bool:
                # The Python client's alias(previous_id, distinct_id), called the way it reads.
                return client.alias(previous_id=device_id, distinct_id=user_id) is not None

            sink.inner._alias = reversed_alias  # type: ignore[method-assign]
        if (
            defect == "alias-twice"
            and request["op"] in ("response", "login")
            and reply.get("accepted")
            and not reply["sent"]
            and driver.stitch is not None
        ):
            device = driver.stitch.device_id
            reply["sent"] = [{"type": "alias", "user_id": request["user_id"], "device_id": device}]
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
        if request["op"] == "exit":
            break
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
