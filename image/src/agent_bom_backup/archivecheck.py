"""What the archive needs from the target server beyond its own objects, checked before
any change: what would otherwise fail after ``--clean`` has wiped the target.

The archive's definitions are read as pg_restore prints them (``--schema-only -f -``: no
database involved) and the target's catalogs are asked for

* **tablespaces** the tables and indexes were in (``SET default_tablespace``). Decision:
  a tablespace the target lacks does not stop the restore; it runs with
  ``--no-tablespaces`` (everything goes to the database's default tablespace) and the
  plan and the report say so. A tablespace is storage placement, not data; refusing
  would leave an operator with no way to restore into a managed instance (where
  tablespaces cannot be created) or a new server laid out differently.
* **collations** in schemas the archive does not create (``pg_catalog."de_DE"``, an
  ICU collation of another build): missing ones refuse the restore, naming them.
* **text search configurations** referenced the same way (``'pg_catalog.german'::regconfig``).

Extensions are checked by the plan from the manifest (restore._check_extensions).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from .errors import RefusedError, RestoreError
from .log import redact_url
from .pgclients import PgClient

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
#: pg_restore prints ``SET default_tablespace = '';`` or ``= name;`` / ``= "Name";`` (fmtId)
_TABLESPACE = re.compile(rf"^SET default_tablespace = ({_IDENT}|'');$", re.MULTILINE)
_COLLATE = re.compile(rf"\bCOLLATE ({_IDENT})\.({_IDENT})")
_CREATE_COLLATION = re.compile(rf"^CREATE COLLATION ({_IDENT})\.({_IDENT})", re.MULTILINE)
_REGCONFIG = re.compile(rf"'({_IDENT})\.({_IDENT})'::regconfig")
_CREATE_CONFIG = re.compile(rf"^CREATE TEXT SEARCH CONFIGURATION ({_IDENT})\.({_IDENT})", re.MULTILINE)


def _unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


@dataclass
class ArchiveNeeds:
    """Names the archive refers to that it does not create (schema-qualified)."""

    tablespaces: list[str] = field(default_factory=list)
    collations: list[tuple[str, str]] = field(default_factory=list)
    text_search_configurations: list[tuple[str, str]] = field(default_factory=list)


def parse_definitions(sql: str) -> ArchiveNeeds:
    """What a pg_restore --schema-only script refers to outside what it creates."""
    def outside(pattern: re.Pattern[str], created: re.Pattern[str]) -> list[tuple[str, str]]:
        made = {(_unquote(m.group(1)), _unquote(m.group(2))) for m in created.finditer(sql)}
        return sorted({(_unquote(m.group(1)), _unquote(m.group(2))) for m in pattern.finditer(sql)} - made)

    tablespaces = sorted({_unquote(m.group(1)) for m in _TABLESPACE.finditer(sql)} - {"''"})
    return ArchiveNeeds(tablespaces=tablespaces, collations=outside(_COLLATE, _CREATE_COLLATION),
                        text_search_configurations=outside(_REGCONFIG, _CREATE_CONFIG))


def read_definitions(client: PgClient, dump_path: Path) -> str:
    result = subprocess.run([str(client.tool("pg_restore")), "--schema-only", "--file=-", str(dump_path)],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        lines = redact_url(result.stderr).strip().splitlines()
        raise RestoreError(f"pg_restore {client.version} cannot print the archive's definitions: "
                           f"{lines[-1] if lines else result.returncode}; the target was not touched")
    return result.stdout


@dataclass(frozen=True)
class ArchiveCheck:
    """The target's answer: tablespaces it lacks (restored without), and what it lacks that
    refuses the restore."""

    needs: ArchiveNeeds
    missing_tablespaces: list[str]
    missing_collations: list[str]
    missing_text_search_configurations: list[str]

    def steps(self) -> list[str]:
        steps = []
        if self.missing_tablespaces:
            steps.append(f"restore without tablespaces (--no-tablespaces): the target lacks "
                         f"{', '.join(self.missing_tablespaces)}; everything goes to the database's default tablespace")
        elif self.needs.tablespaces:
            steps.append(f"restore into tablespaces {', '.join(self.needs.tablespaces)} (present on the target)")
        if self.needs.collations or self.needs.text_search_configurations:
            steps.append("collations and text search configurations the archive uses: present on the target")
        return steps


def check_target(conn: psycopg.Connection, needs: ArchiveNeeds) -> ArchiveCheck:
    """Ask the target's catalogs for each name; refuse missing collations and text search
    configurations (naming them), note missing tablespaces."""
    tablespaces = {r[0] for r in conn.execute("SELECT spcname FROM pg_tablespace").fetchall()}
    missing_collations = []
    for schema, name in needs.collations:
        row = conn.execute(
            "SELECT 1 FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace "
            "WHERE n.nspname = %s AND c.collname = %s AND c.collencoding IN "
            "(-1, (SELECT encoding FROM pg_database WHERE datname = current_database()))", [schema, name]).fetchone()
        if row is None:
            missing_collations.append(f'{schema}."{name}"')
    missing_configs = []
    for schema, name in needs.text_search_configurations:
        row = conn.execute("SELECT 1 FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace "
                           "WHERE n.nspname = %s AND c.cfgname = %s", [schema, name]).fetchone()
        if row is None:
            missing_configs.append(f"{schema}.{name}")
    check = ArchiveCheck(needs, [t for t in needs.tablespaces if t not in tablespaces], missing_collations,
                         missing_configs)
    problems = []
    if missing_collations:
        problems.append(f"collation(s) {', '.join(missing_collations)}")
    if missing_configs:
        problems.append(f"text search configuration(s) {', '.join(missing_configs)}")
    if problems:
        raise RefusedError(
            f"the target server lacks what the backup's objects use: {'; '.join(problems)}; nothing was changed "
            "(pg_restore would fail after --clean wiped the target)",
            hint="create them on the target (an OS locale or ICU build with them, CREATE COLLATION / CREATE TEXT "
            "SEARCH CONFIGURATION), or restore into a server that has them",
        )
    return check
