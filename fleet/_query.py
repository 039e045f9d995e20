"""The fleet check as one query, rendered per SQL dialect.

The query is written once, below, over three relations named as PostHog's
batch exports name their models: ``persons`` (one row per distinct id and
version: ``team_id, distinct_id, person_id, person_distinct_id_version,
person_version, is_deleted``), ``events`` (``event, distinct_id,
properties, timestamp``) and, for ``--users FILE``, ``users``
(``distinct_id``). What differs between engines is small and declared as
data in :data:`DIALECTS`: how a JSON property is read, how a regular
expression matches a whole id, how a string literal is escaped and how a
deleted row is told. The renderer fills those in; nothing else changes, so
every engine answers the same question:

1. ``latest``: the newest row of each ``(team_id, distinct_id)``, by
   ``person_distinct_id_version`` then ``person_version`` (exports are
   incremental: an older row may come after a newer one), kept unless it is
   deleted. ``person_id`` there is the truth; on old events it is stale.
2. ``devices``: the ids the events show as devices (``$device_id`` on every
   event idstitch sends; the ``alias`` of ``$create_alias``;
   the ``$anon_distinct_id`` of ``$identify``), or
   the ids ``--users`` / ``--user-pattern`` do not name as users.
3. ``flagged``: the persons holding two or more user ids; the result is
   their rows, one per distinct id, with ``is_user``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DIALECTS", "MERGE_EVENTS", "Dialect", "UserSource", "check_sql", "render_sql"]

#: The events that merge persons, with the property naming the id merged in.
MERGE_EVENTS = {
    "$create_alias": "alias",
    "$merge_dangerously": "alias",
    "$identify": "$anon_distinct_id",
}
#: The merge events whose merged-in id is a device (``$merge_dangerously`` merges users).
DEVICE_MERGES = ("$create_alias", "$identify")


@dataclass(frozen=True, slots=True)
class Dialect:
    """What one SQL engine spells its own way.

    ``json``: a JSON property of a column as text (``{col}``, ``{key}``),
    NULL when absent. ``matches``: whether ``{col}`` matches the regular
    expression ``{pattern}`` (a literal). ``anchor``: the user's
    ``{pattern}`` as that function must see it to match as Python's
    ``re.fullmatch`` does (the whole id, ``.`` not matching a newline).
    ``live``: the condition of a row that is not deleted (NULL is not
    deleted). ``backslash``: whether string literals treat a backslash as
    an escape.
    """

    json: str
    matches: str
    anchor: str
    live: str
    backslash: bool

    def literal(self, text: str) -> str:
        """``text`` as a string literal of this dialect."""
        if self.backslash:
            return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return "'" + text.replace("'", "''") + "'"

    def prop(self, column: str, key: str) -> str:
        """The JSON property ``key`` of ``column``, as text (NULL when absent)."""
        return self.json.format(col=column, key=key)

    def full_match(self, column: str, pattern: str) -> str:
        """Whether ``column`` matches ``pattern`` as a whole (Python's ``re.fullmatch``)."""
        anchored = self.anchor.format(pattern=pattern)
        return self.matches.format(col=column, pattern=self.literal(anchored))


#: The engines the check is rendered for. ClickHouse's JSONExtractString answers '' for an
#: absent key, hence the nullIf; its match() lets '.' match a newline unless told (?-s), and
#: NOT of a NULL is_deleted would drop the row. Snowflake's REGEXP_LIKE and DuckDB's
#: regexp_full_match match the whole string already. The test suite runs the DuckDB and
#: ClickHouse (chDB) renderings over the same exports (tests/unit/fleet/).
DIALECTS = {
    "duckdb": Dialect(
        json="json_extract_string({col}, '$.\"{key}\"')",
        matches="regexp_full_match({col}, {pattern})",
        anchor="{pattern}",
        live="NOT coalesce(CAST(is_deleted AS BOOLEAN), false)",
        backslash=False,
    ),
    "clickhouse": Dialect(
        json="nullIf(JSONExtractString({col}, '{key}'), '')",
        matches="match({col}, {pattern})",
        anchor="^(?-s:{pattern})$",
        live="NOT ifNull(toBool(is_deleted), false)",
        backslash=True,
    ),
    "bigquery": Dialect(
        json="JSON_VALUE({col}, '$.\"{key}\"')",
        matches="REGEXP_CONTAINS({col}, {pattern})",
        anchor="^(?:{pattern})$",
        live="NOT COALESCE(CAST(is_deleted AS BOOL), FALSE)",
        backslash=True,
    ),
    "snowflake": Dialect(
        json="GET_PATH(TRY_PARSE_JSON(TO_VARCHAR({col})), '\"{key}\"')::STRING",
        matches="REGEXP_LIKE({col}, {pattern})",
        anchor="{pattern}",
        live="NOT COALESCE(is_deleted::BOOLEAN, FALSE)",
        backslash=True,
    ),
}


@dataclass(frozen=True, slots=True)
class UserSource:
    """How user ids are told from device ids: by the events (the default), by a ``users``
    relation (``--users FILE``), or by a regular expression (``--user-pattern``)."""

    kind: str = "events"
    pattern: str | None = None


def _devices(dialect: Dialect, users: UserSource) -> str:
    """The ``devices`` CTE when the events tell devices from users (else nothing)."""
    if users.kind != "events":
        return ""
    seen = [
        f"  SELECT {dialect.prop('properties', '$device_id')} AS distinct_id FROM events",
        *(
            f"  SELECT {dialect.prop('properties', key)} FROM events "
            f"WHERE event = {dialect.literal(event)}"
            for event, key in MERGE_EVENTS.items()
            if event in DEVICE_MERGES
        ),
    ]
    union = "\n  UNION ALL\n".join(seen)
    return (
        f"devices AS (\n  SELECT DISTINCT distinct_id FROM (\n{union}\n  ) AS seen\n"
        "  WHERE distinct_id IS NOT NULL\n),\n"
    )


def _is_user(dialect: Dialect, users: UserSource) -> str:
    """1 for a user id, 0 for a device id, as the ``users`` source tells them."""
    if users.kind == "pattern":
        assert users.pattern is not None
        return f"CASE WHEN {dialect.full_match('distinct_id', users.pattern)} THEN 1 ELSE 0 END"
    if users.kind == "list":
        return "CASE WHEN distinct_id IN (SELECT distinct_id FROM users) THEN 1 ELSE 0 END"
    return "CASE WHEN distinct_id IN (SELECT distinct_id FROM devices) THEN 0 ELSE 1 END"


def check_sql(dialect: Dialect, users: UserSource) -> str:
    """The fleet check in ``dialect``: one row per distinct id of each flagged person
    (``team_id, person_id, distinct_id, is_user, version``), ordered."""
    return f"""WITH ranked AS (
  SELECT team_id, distinct_id, person_id, person_distinct_id_version AS version, is_deleted,
    ROW_NUMBER() OVER (
      PARTITION BY team_id, distinct_id
      ORDER BY person_distinct_id_version DESC, person_version DESC
    ) AS row_number
  FROM persons
),
latest AS (
  SELECT team_id, distinct_id, person_id, version FROM ranked
  WHERE row_number = 1 AND {dialect.live}
),
{_devices(dialect, users)}classified AS (
  SELECT team_id, person_id, distinct_id, version,
    {_is_user(dialect, users)} AS is_user
  FROM latest
),
flagged AS (
  SELECT team_id, person_id FROM classified
  GROUP BY team_id, person_id HAVING SUM(is_user) >= 2
)
SELECT c.team_id, c.person_id, c.distinct_id, c.is_user, c.version
FROM classified AS c
JOIN flagged AS f ON c.team_id = f.team_id AND c.person_id = f.person_id
ORDER BY c.team_id, c.person_id, c.is_user DESC, c.distinct_id
"""


def render_sql(engine: str, *, user_pattern: str | None = None, users: bool = False) -> str:
    """The fleet check for ``engine`` (a key of :data:`DIALECTS`) over the relations
    ``persons`` and ``events``; users are told from devices by the events, or by
    ``user_pattern`` (a regular expression matching a whole user id), or by a relation
    ``users`` (``users=True``). Raises ``ValueError`` naming the engines for any other."""
    dialect = DIALECTS.get(engine)
    if dialect is None:
        raise ValueError(f"unknown SQL engine {engine!r}: use one of {', '.join(DIALECTS)}")
    if user_pattern is not None:
        return check_sql(dialect, UserSource("pattern", user_pattern))
    return check_sql(dialect, UserSource("list") if users else UserSource())
