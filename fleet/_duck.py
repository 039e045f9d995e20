"""The embedded engine: PostHog's exports read by DuckDB, the check and the explanation run there.

The exports are read where they lie (local files or an object store DuckDB
reaches: ``s3://``, ``gs://``, ``https://``), as Parquet (``.parquet``,
PostHog's ``.parquet.zst`` included: the compression is inside the file)
or as JSON lines (anything else; ``.gz`` and ``.zst`` are unpacked on the
fly), through a glob, files of different column sets unioned by name. Each
export becomes a view with the columns the query names, typed once here, so
the query of :mod:`._query` reads the same relations as in a warehouse.

Memory stays bounded: DuckDB spills to ``temp_directory`` (a private
temporary folder by default) past ``memory_limit``, and does not keep
insertion order, which it would otherwise hold in memory.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from idstitch.audit import UnusableInputError

from ._query import DIALECTS, MERGE_EVENTS, UserSource, check_sql

if TYPE_CHECKING:
    import duckdb

__all__ = ["Engine", "open_engine"]

_SQL = DIALECTS["duckdb"]

#: The columns of each export the fleet audit reads, and their types.
PERSONS_COLUMNS = {
    "team_id": "BIGINT",
    "distinct_id": "VARCHAR",
    "person_id": "VARCHAR",
    "person_distinct_id_version": "BIGINT",
    "person_version": "BIGINT",
    "is_deleted": "BOOLEAN",
}
EVENTS_COLUMNS = {
    "event": "VARCHAR",
    "distinct_id": "VARCHAR",
    "properties": "JSON",
    "timestamp": "TIMESTAMPTZ",
}


def _is_parquet(glob: str) -> bool:
    return ".parquet" in glob.rsplit("/", 1)[-1].lower()


#: The events' properties as a JSON object: Parquet holds them as a JSON string, JSON lines
#: as the object itself or as a string holding it.
_PROPERTIES = (
    "CASE WHEN json_type(CAST(properties AS JSON)) = 'VARCHAR' "
    "THEN CAST(CAST(properties AS JSON) ->> '$' AS JSON) "
    "ELSE CAST(properties AS JSON) END AS properties"
)


def _source(glob: str, columns: dict[str, str]) -> str:
    """A ``SELECT`` of ``columns`` (typed) from the files ``glob`` names."""
    if _is_parquet(glob):
        reader = f"read_parquet({_SQL.literal(glob)}, union_by_name = true)"
    else:
        declared = ", ".join(f"{name}: {_SQL.literal(kind)}" for name, kind in columns.items())
        reader = (
            f"read_json({_SQL.literal(glob)}, format = 'newline_delimited', "
            f"union_by_name = true, columns = {{{declared}}})"
        )
    typed = [
        _PROPERTIES if name == "properties" else f"CAST({name} AS {kind}) AS {name}"
        for name, kind in columns.items()
    ]
    return f"SELECT {', '.join(typed)} FROM {reader}"


def _unusable(what: str, exc: Exception) -> UnusableInputError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return UnusableInputError(f"cannot read the {what}: {first}")


class Engine:
    """One DuckDB connection holding the views ``persons`` (and ``events``, ``users``)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, users: UserSource) -> None:
        self.con = con
        self.users = users
        self.has_events = False

    def _view(self, name: str, what: str, select: str) -> None:
        import duckdb

        try:
            self.con.execute(f"CREATE VIEW {name} AS {select}")
            self.con.execute(f"SELECT * FROM {name} LIMIT 0").fetchall()
        except duckdb.Error as exc:
            raise _unusable(what, exc) from None

    def attach_persons(self, glob: str) -> None:
        """The persons export as the view ``persons``; raises
        :class:`~idstitch.audit.UnusableInputError` when it cannot be read."""
        self._view("persons", f"persons export {glob!r}", _source(glob, PERSONS_COLUMNS))

    def attach_events(self, glob: str) -> None:
        """The events export as the view ``events`` (only what the audit reads)."""
        self._view("events", f"events export {glob!r}", _source(glob, EVENTS_COLUMNS))
        self.has_events = True

    def attach_users(self, ids: Iterable[str]) -> None:
        """The user ids of ``--users`` as the table ``users``."""
        self.con.execute("CREATE TABLE users (distinct_id VARCHAR)")
        self.con.execute("INSERT INTO users SELECT unnest(?::VARCHAR[])", [list(ids)])

    def _rows(self, what: str, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        import duckdb

        try:
            return self.con.execute(sql, params).fetchall()
        except duckdb.Error as exc:
            raise _unusable(what, exc) from None

    def check(self) -> list[tuple[str, str, str, int, int]]:
        """The fleet check: ``(team_id, person_id, distinct_id, is_user, version)`` rows."""
        return [
            (str(team), str(person), str(distinct), int(is_user), int(version or 0))
            for team, person, distinct, is_user, version in self._rows(
                "exports", check_sql(_SQL, self.users)
            )
        ]

    def _hold(self, ids: Iterable[str]) -> None:
        """The distinct ids the explanation looks at, as the table ``held``."""
        self.con.execute("CREATE OR REPLACE TEMP TABLE held (distinct_id VARCHAR)")
        self.con.execute("INSERT INTO held SELECT unnest(?::VARCHAR[])", [sorted(set(ids))])

    def merges(self, ids: Iterable[str]) -> list[tuple[str, str, str, str]]:
        """Every merge event touching one of ``ids``, oldest first:
        ``(time, event, distinct_id, other id)``."""
        self._hold(ids)
        return self._rows(
            "events export",
            _merges_sql(
                "EXISTS (SELECT 1 FROM held h WHERE h.distinct_id IN (m.distinct_id, m.other))"
            ),
        )

    def first_events(self, ids: Iterable[str]) -> list[tuple[str, str]]:
        """``(time, distinct_id)``: the first event of each of ``ids`` that processes persons
        (idstitch's device events carry ``$process_person_profile: false``)."""
        self._hold(ids)
        profile = _SQL.prop("properties", "$process_person_profile")
        return self._rows(
            "events export",
            f"SELECT CAST(min(timestamp) AS VARCHAR), distinct_id FROM events "
            f"WHERE distinct_id IN (SELECT distinct_id FROM held) "
            f"AND event NOT IN ({', '.join(_SQL.literal(e) for e in MERGE_EVENTS)}) "
            f"AND coalesce({profile}, 'true') <> 'false' GROUP BY distinct_id",
        )

    def shared_devices(self) -> list[tuple[str, str, str, str]]:
        """``(other id, time, event, user)`` for each id merged into two or more distinct ids,
        oldest first (refused merges included)."""
        return self._rows(
            "events export",
            _merges_sql(
                "m.other IN (SELECT other FROM merges GROUP BY other "
                "HAVING count(DISTINCT distinct_id) >= 2)",
                select="m.other, CAST(m.timestamp AS VARCHAR), m.event, m.distinct_id",
                order="m.other, m.timestamp, m.distinct_id",
            ),
        )

    def merge_ids(self) -> list[str]:
        """Every id a merge event names (the candidates of the illegal-id check)."""
        rows = self._rows(
            "events export",
            "WITH merges AS (" + _merges_select() + ") "
            "SELECT DISTINCT id FROM (SELECT distinct_id AS id FROM merges "
            "UNION ALL SELECT other FROM merges) WHERE id IS NOT NULL ORDER BY id",
        )
        return [str(row[0]) for row in rows]


def _merges_select() -> str:
    """The merge events: ``timestamp, event, distinct_id, other`` (the id merged in)."""
    other = " ".join(
        f"WHEN {_SQL.literal(event)} THEN {_SQL.prop('properties', key)}"
        for event, key in MERGE_EVENTS.items()
    )
    names = ", ".join(_SQL.literal(event) for event in MERGE_EVENTS)
    return (
        f"SELECT timestamp, event, distinct_id, CASE event {other} END AS other "
        f"FROM events WHERE event IN ({names})"
    )


def _merges_sql(
    where: str,
    *,
    select: str = "CAST(m.timestamp AS VARCHAR), m.event, m.distinct_id, m.other",
    order: str = "m.timestamp, m.distinct_id",
) -> str:
    return (
        f"WITH merges AS ({_merges_select()}) SELECT {select} FROM merges AS m "
        f"WHERE m.other IS NOT NULL AND {where} ORDER BY {order}"
    )


@contextlib.contextmanager
def open_engine(
    users: UserSource,
    *,
    memory_limit: str | None = None,
    temp_directory: str | None = None,
    progress: bool = False,
) -> Iterator[Engine]:
    """An in-memory DuckDB that spills past ``memory_limit`` (DuckDB's default: 80 % of
    the RAM) to ``temp_directory`` (a private folder, removed after, by default);
    ``progress``: DuckDB's progress bar on scans longer than two seconds (on stdout: for
    a terminal only). Raises :class:`~idstitch.audit.UnusableInputError` when DuckDB is
    missing (the ``idstitch[fleet]`` extra)."""
    try:
        import duckdb
    except ImportError:
        raise UnusableInputError(
            "the fleet audit needs DuckDB: pip install 'idstitch[fleet]'"
        ) from None
    own = temp_directory is None
    folder = (
        tempfile.mkdtemp(prefix="idstitch-fleet-") if temp_directory is None else temp_directory
    )
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"SET temp_directory = {_SQL.literal(folder)}")
        con.execute("SET preserve_insertion_order = false")
        if memory_limit is not None:
            con.execute(f"SET memory_limit = {_SQL.literal(memory_limit)}")
        con.execute(f"SET enable_progress_bar = {'true' if progress else 'false'}")
        yield Engine(con, users)
    finally:
        con.close()
        if own:
            shutil.rmtree(folder, ignore_errors=True)
