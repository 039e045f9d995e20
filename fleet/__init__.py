"""The fleet audit (``idstitch fleet``): over a PostHog export, the persons holding two users.

``idstitch persons`` answers for one machine's log; this answers for a
whole PostHog project, from its batch export (persons, and events for the
explanation), and plans the splits (docs/fleet.md)::

    from idstitch.fleet import fleet_audit

    report = fleet_audit("export/persons/*.parquet", events="export/events/*.parquet")
    for person in report.persons:
        print(person.person_id, person.keep, person.split)

It needs the ``idstitch[fleet]`` extra (DuckDB) to run; :func:`render_sql`
prints the same check for a warehouse without it. Nothing of this package
is on a CLI's start path.
"""

from __future__ import annotations

from idstitch.events._lazy import lazy_exports

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost
if TYPE_CHECKING:
    from ._api import FlaggedPerson, FleetReport, IllegalId, Join, SharedDevice, fleet_audit
    from ._query import DIALECTS, render_sql

__all__ = [
    "DIALECTS",
    "FlaggedPerson",
    "FleetReport",
    "IllegalId",
    "Join",
    "SharedDevice",
    "fleet_audit",
    "render_sql",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "._api": (
            "FlaggedPerson",
            "FleetReport",
            "IllegalId",
            "Join",
            "SharedDevice",
            "fleet_audit",
        ),
        "._query": ("DIALECTS", "render_sql"),
    },
)
