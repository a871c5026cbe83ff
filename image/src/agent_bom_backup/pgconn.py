"""PostgreSQL connection settings shared by psycopg and the libpq client tools.

No secret travels in argv: psycopg receives them as keyword arguments; pg_dump,
pg_restore, pg_dumpall and psql receive the password through ``PGPASSWORD`` and the
secrets libpq reads from no environment variable (``sslpassword``, PostgreSQL 18's
``oauth_client_secret``) through a private service file (``PGSERVICEFILE``, 0600 in a
0700 directory, removed when the process exits) named by ``service=`` in ``--dbname``.

Every connection overrides role- and database-level timeouts from its first
statement through the libpq ``options`` startup parameter, which takes precedence
over ``ALTER ROLE/DATABASE ... SET`` (a DBA's ``statement_timeout = '1min'`` would
otherwise kill a long dump at 03:00).
"""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .errors import ConfigError, PreflightError
from .log import SECRET_PARAMS, password_candidates, redact_url

DEFAULT_CONNECT_TIMEOUT = 15
APPLICATION_NAME = "agent-bom-backup"
#: TCP keepalives on every connection: the snapshot connection idles for the whole dump,
#: and a NAT, load balancer or proxy that drops idle connections would otherwise cut it
#: (libpq ignores them on Unix sockets; a URL that sets them wins)
#: ``password`` goes to client tools through PGPASSWORD; the other secret parameters have
#: no environment variable and go through a service file
FILE_SECRET_PARAMS = SECRET_PARAMS[1:]
#: the section of the private service file (see :func:`service_file`)
SERVICE_NAME = "agent-bom-backup"
KEEPALIVES = {"keepalives": "1", "keepalives_idle": "30", "keepalives_interval": "10", "keepalives_count": "6"}

#: Settings that change how catalog queries and tenant keys print (format_type and
#: pg_get_expr qualify names by search_path; dates, times and floats print by TimeZone,
#: DateStyle, IntervalStyle, extra_float_digits). Inspection sessions pin them on both
#: sides, so a role's or database's own settings cannot make a faithful restore differ.
INSPECTION_SETTINGS: tuple[tuple[str, str], ...] = (
    ("search_path", "pg_catalog"),
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, MDY"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "1"),
    ("bytea_output", "hex"),
)
#: what manifests of format 1 were inspected with (PostgreSQL's default search_path)
LEGACY_INSPECTION_SETTINGS: tuple[tuple[str, str], ...] = (("search_path", '"$user", public'),) + INSPECTION_SETTINGS[1:]


@dataclass(frozen=True)
class SessionSettings:
    """Startup options applied to every connection the job opens."""

    server_major: int | None = None
    lock_timeout_ms: int = 0
    row_security: bool = False
    extra: tuple[tuple[str, str], ...] = ()

    def options(self) -> str:
        settings: list[tuple[str, str]] = [
            ("statement_timeout", "0"),
            ("lock_timeout", str(self.lock_timeout_ms)),
            ("idle_in_transaction_session_timeout", "0"),
        ]
        settings += self.version_settings()
        settings.append(("row_security", "on" if self.row_security else "off"))
        # psycopg parses dates and intervals in these styles only; a role or database set
        # to another (DateStyle = 'SQL, DMY') would make reading now() fail
        settings += [("DateStyle", "ISO, MDY"), ("IntervalStyle", "postgres")]
        settings.extend(self.extra)
        return " ".join(f"-c {name}={_escape_option(value)}" for name, value in settings)

    def version_settings(self) -> list[tuple[str, str]]:
        """The timeouts only some majors have (a server refuses to start a session that
        names a setting it does not know): none until the major is known."""
        major = self.server_major or 0
        return [(name, "0") for name, since in (("idle_session_timeout", 14), ("transaction_timeout", 17))
                if major >= since]

    def inspecting(self, settings: tuple[tuple[str, str], ...] = INSPECTION_SETTINGS) -> "SessionSettings":
        """These settings plus the pinned ones of an inspection session."""
        return replace(self, extra=self.extra + tuple(settings))


def _escape_option(value: str) -> str:
    # libpq options: backslash escapes spaces and backslashes
    return value.replace("\\", "\\\\").replace(" ", "\\ ")


@dataclass(frozen=True)
class ConnInfo:
    """A parsed connection URL (or key=value conninfo), password kept apart."""

    params: dict[str, str] = field(default_factory=dict)
    password: str | None = field(default=None, repr=False)
    #: the other secret parameters (sslpassword, oauth_client_secret): never in argv
    secrets: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def parse(cls, url: str, *, what: str = "database URL") -> "ConnInfo":
        if not url or not url.strip():
            raise ConfigError(f"{what} is empty", hint="set it in the environment")
        try:
            params = conninfo_to_dict(url.strip())
        except psycopg.ProgrammingError as exc:
            raise ConfigError(
                f"{what} is not a valid PostgreSQL URL: {_without_password(str(exc), url)}",
                hint="use postgresql://USER@HOST:PORT/DBNAME and percent-encode reserved characters "
                "(% as %25, a space as %20)",
            ) from None
        params = {k: str(v) for k, v in params.items() if v is not None}
        password = params.pop("password", None)
        if password is None:
            password = os.environ.get("PGPASSWORD") or None
        secrets = {name: params.pop(name) for name in FILE_SECRET_PARAMS if name in params}
        if secrets and "service" in params:
            raise ConfigError(
                f"{what} names both a service and {', '.join(sorted(secrets))}: the client tools would see "
                "the secret in their command line",
                hint=f"put {', '.join(sorted(secrets))} into that service's entry in the service file instead",
            )
        bad = [name for name, value in secrets.items() if "\n" in value or "\r" in value or value != value.strip()]
        if bad:
            raise ConfigError(f"{what}: {', '.join(bad)} holds a line break or leading/trailing spaces, which "
                              "a libpq service file cannot carry", hint="choose a key passphrase without them")
        return cls(params=params, password=password, secrets=secrets)

    @property
    def dbname(self) -> str:
        return self.params.get("dbname") or os.environ.get("PGDATABASE") or self.user

    @property
    def user(self) -> str:
        return self.params.get("user") or os.environ.get("PGUSER") or _os_user()

    @property
    def host(self) -> str:
        return self.params.get("host") or os.environ.get("PGHOST") or "localhost"

    @property
    def sslmode(self) -> str | None:
        return self.params.get("sslmode") or os.environ.get("PGSSLMODE") or None

    @property
    def over_tcp(self) -> bool:
        return not self.host.startswith("/")

    def with_dbname(self, dbname: str) -> "ConnInfo":
        return replace(self, params={**self.params, "dbname": dbname})

    def display(self) -> str:
        """A credential-free description safe for logs and reports."""
        port = self.params.get("port") or os.environ.get("PGPORT") or "5432"
        return f"postgresql://{self.user}@{self.host}:{port}/{self.dbname}"

    def conninfo(self, session: SessionSettings | None = None) -> str:
        """key=value conninfo without any secret (psycopg gets them as keywords)."""
        params = dict(self.params)
        params.setdefault("connect_timeout", str(DEFAULT_CONNECT_TIMEOUT))
        params.setdefault("application_name", APPLICATION_NAME)
        for name, value in KEEPALIVES.items():
            params.setdefault(name, value)
        if session is not None:
            user_options = params.get("options", "")
            params["options"] = (session.options() + " " + user_options).strip()
        return make_conninfo(**params)

    def tool_conninfo(self, session: SessionSettings | None = None) -> str:
        """The ``--dbname`` of a client tool: no secret; ``service=`` names the private
        service file :meth:`tool_env` points to when there are secrets besides the password."""
        conninfo = self.conninfo(session)
        if self.secrets:
            conninfo += f" service={SERVICE_NAME}"
        return conninfo

    def tool_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for a libpq client tool: the password, the private service file
        when there are other secrets, and nothing stale."""
        env = dict(os.environ if base is None else base)
        for stale in ("PGPASSWORD", "PGOPTIONS", "AGENT_BOM_POSTGRES_URL", "AGENT_BOM_RESTORE_POSTGRES_URL"):
            env.pop(stale, None)
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        if self.secrets:
            env["PGSERVICEFILE"] = str(service_file(self.secrets))
        return env

    def url(self) -> str:
        """The whole conninfo, secrets included: for this process only (psycopg, a
        scratch database's URL handed to a restore in-process), never argv or logs."""
        params = {**self.params, **self.secrets}
        if self.password is not None:
            params["password"] = self.password
        return make_conninfo(**params)

    def connect(self, session: SessionSettings | None = None, *, autocommit: bool = True) -> psycopg.Connection:
        try:
            return psycopg.connect(
                self.conninfo(session), password=self.password, autocommit=autocommit, **self.secrets
            )
        except psycopg.OperationalError as exc:
            raise PreflightError(
                f"cannot connect to {self.display()}: {_first_line(exc)}",
                hint="check the URL, network policy, credentials and that the server is up",
            ) from None


_service_files: dict[str, Path] = {}


def service_file(secrets: dict[str, str]) -> Path:
    """A libpq service file holding ``secrets`` in section :data:`SERVICE_NAME`: 0600 in
    a 0700 directory of this process, written once per set of secrets, removed at exit."""
    key = hashlib.sha256(repr(sorted(secrets.items())).encode()).hexdigest()
    path = _service_files.get(key)
    if path is not None and path.exists():
        return path
    directory = tempfile.mkdtemp(prefix="agent-bom-libpq-")  # 0700
    atexit.register(shutil.rmtree, directory, True)
    path = Path(directory) / "pg_service.conf"
    body = f"[{SERVICE_NAME}]\n" + "".join(f"{name}={value}\n" for name, value in secrets.items())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(body)
    _service_files[key] = path
    return path


def connect_learning_major(conn_info: ConnInfo, session: SessionSettings) -> tuple[psycopg.Connection, int]:
    """One connection (autocommit) that learns the server's major version from the startup
    answer and sets the timeouts of that major (:meth:`SessionSettings.version_settings`)
    as its first statement: the backup's probe and, later, its snapshot, on one connection."""
    conn = conn_info.connect(session)
    major = conn.info.server_version // 10000
    late = replace(session, server_major=major).version_settings()
    if late:
        try:
            conn.execute("SELECT " + ", ".join("set_config(%s, %s, false)" for _ in late),
                         [value for setting in late for value in setting])
        except psycopg.OperationalError:
            # A role- or database-level idle_session_timeout shorter than the gap before the
            # first statement ends the session first: connect again, the major now known, with
            # every timeout in the startup packet (which takes precedence over those settings).
            conn.close()
            try:
                conn = conn_info.connect(replace(session, server_major=major))
            except psycopg.Error as exc:
                raise PreflightError(
                    f"cannot configure the session on {conn_info.display()}: {_first_line(exc)}") from None
        except psycopg.Error as exc:
            conn.close()
            raise PreflightError(f"cannot configure the session on {conn_info.display()}: {_first_line(exc)}") from None
    return conn, major


def probe_server_major(conn_info: ConnInfo) -> int:
    """Server major version, read from the startup packet (no statement needed)."""
    with conn_info.connect(SessionSettings()) as conn:
        return conn.info.server_version // 10000


def _without_password(message: str, url: str) -> str:
    """libpq's parse error, which quotes the token it choked on: the password, or a piece
    of it, when the password holds a raw ``%`` or space. Read before the URL could be parsed."""
    candidates = [c for c in password_candidates(url) if c]

    def quoted(match: re.Match[str]) -> str:
        token = match.group(1)
        touches = any(token and (token in c or c in token) for c in candidates)
        return '"***"' if touches else match.group(0)

    text = re.sub(r'"([^"]*)"', quoted, redact_url(message))
    for candidate in sorted(candidates, key=len, reverse=True):
        if len(candidate) >= 4:
            text = text.replace(candidate, "***")
    return " ".join(text.split())


def _first_line(exc: BaseException) -> str:
    text = redact_url(str(exc)).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else exc.__class__.__name__


def _os_user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (KeyError, ImportError):
        return "postgres"
