"""The backup's roles object read as data, never run as a script.

The roles object is ``pg_dumpall --globals-only --no-role-passwords`` output (PostgreSQL
15 to 18). It is tokenized with SQL's quoting (a literal may span lines, ``--`` starts a
comment only outside quotes) and every statement must be one of the forms pg_dumpall
writes; anything else refuses the restore before any change, naming its line:

* ``SET name = value`` headers, psql's ``\\restrict``/``\\unrestrict`` lines: skipped
* ``CREATE ROLE name``; ``ALTER ROLE name WITH attribute ...`` (no PASSWORD)
* ``ALTER ROLE name [IN DATABASE db] SET parameter TO 'value'[, 'value' ...]``
* ``GRANT role TO member [WITH ADMIN OPTION | WITH ADMIN|INHERIT|SET TRUE|FALSE, ...] [GRANTED BY role]``
* ``GRANT SET|ALTER SYSTEM|ALL ON PARAMETER name TO role [WITH GRANT OPTION]``
* ``COMMENT ON ROLE name IS 'text'``, ``SECURITY LABEL FOR provider ON ROLE name IS 'text'``
* tablespace statements (CREATE/ALTER/COMMENT/SECURITY LABEL/GRANT/REVOKE): skipped

What the restore runs is built from the parsed values (identifiers and literals quoted
again), so nothing in the file reaches the server as text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import RefusedError

#: attributes CREATE ROLE sets unless told otherwise; only the others are restored
DEFAULT_ATTRIBUTES = frozenset({"NOSUPERUSER", "NOCREATEDB", "NOCREATEROLE", "INHERIT", "NOLOGIN", "NOREPLICATION",
                                "NOBYPASSRLS", "CONNECTION LIMIT -1"})
ATTRIBUTE_WORDS = frozenset({"SUPERUSER", "NOSUPERUSER", "CREATEDB", "NOCREATEDB", "CREATEROLE", "NOCREATEROLE",
                             "INHERIT", "NOINHERIT", "LOGIN", "NOLOGIN", "REPLICATION", "NOREPLICATION",
                             "BYPASSRLS", "NOBYPASSRLS"})
#: attributes that make a role one no restore grants membership in
PRIVILEGED_ATTRIBUTES = frozenset({"SUPERUSER", "BYPASSRLS", "REPLICATION", "CREATEROLE"})


class RolesFileError(RefusedError):
    """The roles object holds something pg_dumpall does not write: refused before any change."""


@dataclass(frozen=True)
class Token:
    kind: str  # word | ident (quoted) | string | number | punct
    text: str  # the value: a word as written, an identifier or literal unquoted

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""


@dataclass(frozen=True)
class Statement:
    line: int  # 1-based line where it starts
    text: str  # as written (for messages)
    tokens: tuple[Token, ...]


@dataclass(frozen=True)
class Setting:
    parameter: str
    values: tuple[str, ...]
    database: str | None = None  # IN DATABASE


@dataclass(frozen=True)
class Membership:
    role: str
    member: str
    admin: bool = False
    inherit: bool | None = None  # None: not stated (PostgreSQL 15 output)
    set: bool | None = None
    line: int = 0


@dataclass(frozen=True)
class ParameterGrant:
    parameter: str
    privileges: tuple[str, ...]
    grantee: str
    grant_option: bool = False
    line: int = 0


@dataclass
class StoredRole:
    name: str
    attributes: list[str] = field(default_factory=list)  # as written, upper-cased; CONNECTION LIMIT/VALID UNTIL kept
    settings: list[Setting] = field(default_factory=list)
    comment: str | None = None
    member_of: list[str] = field(default_factory=list)

    @property
    def attribute_list(self) -> list[str]:
        """The attributes that differ from CREATE ROLE's defaults."""
        return [a for a in self.attributes if a not in DEFAULT_ATTRIBUTES]

    @property
    def privileged(self) -> bool:
        return bool(PRIVILEGED_ATTRIBUTES & set(self.attributes))


@dataclass
class RolesFile:
    roles: dict[str, StoredRole] = field(default_factory=dict)
    memberships: list[Membership] = field(default_factory=list)
    parameter_grants: list[ParameterGrant] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "line N: what" (tablespaces, security labels)

    def role(self, name: str) -> StoredRole:
        return self.roles.setdefault(name, StoredRole(name))


# --------------------------------------------------------------------------- tokens
_WORD = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_META = re.compile(r"^\\(restrict|unrestrict) [A-Za-z0-9]+$")


def _refuse(line: int, text: str, why: str) -> RolesFileError:
    shown = " ".join(text.split())
    if len(shown) > 120:
        shown = shown[:117] + "..."
    return RolesFileError(
        f"the backup's roles object is not what pg_dumpall writes: line {line}: {why}: {shown}",
        hint="nothing was changed; restore another backup, or create the roles by hand and restore with "
        "--no-owner --no-privileges",
    )


def split_statements(text: str) -> list[Statement]:
    """Statements with their tokens; psql's \\restrict/\\unrestrict lines dropped."""
    statements: list[Statement] = []
    tokens: list[Token] = []
    start_line = 0
    start = 0
    i, line, n = 0, 1, len(text)
    at_line_start = True
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            if ch == "\n":
                line, at_line_start = line + 1, True
            i += 1
            continue
        if at_line_start and ch == "\\" and not tokens:
            i = _skip_meta(text, i, line)
            continue
        at_line_start = False
        if not tokens:
            start_line, start = line, i
        if text.startswith("--", i):
            i = _line_end(text, i)
            if not tokens:
                start_line = 0
            continue
        if ch == ";":
            if not tokens:
                raise _refuse(line, ";", "an empty statement")
            statements.append(Statement(start_line, text[start:i + 1], tuple(tokens)))
            tokens = []
            i += 1
            continue
        if ch in "'\"":
            value, end = _quoted(text, i, (start_line, start))
            line += text.count("\n", i, end)
            i = end
            if ch == "'" and tokens and tokens[-1].kind == "word" and tokens[-1].text.upper() in ("E", "U&"):
                raise _refuse(start_line, text[start:i], "an escape string literal")
            tokens.append(Token("string" if ch == "'" else "ident", value))
            continue
        if match := _NUMBER.match(text, i):
            if ch != "-" or (tokens and tokens[-1].upper == "LIMIT"):
                tokens.append(Token("number", match.group()))
                i = match.end()
                continue
        if match := _WORD.match(text, i):
            tokens.append(Token("word", match.group()))
            i = match.end()
            continue
        if ch in ",=.":
            tokens.append(Token("punct", ch))
            i += 1
            continue
        raise _refuse(line, text[start:i + 1], f"an unexpected character {ch!r}")
    if tokens:
        raise _refuse(start_line, text[start:], "a statement without its closing semicolon")
    return statements


def _skip_meta(text: str, i: int, line: int) -> int:
    """Past a psql meta-command line at ``i`` (only \\restrict and \\unrestrict are allowed)."""
    end = _line_end(text, i)
    meta = text[i:end].rstrip()
    if not _META.match(meta):
        raise _refuse(line, meta, "a psql command other than \\restrict or \\unrestrict")
    return end


def _line_end(text: str, i: int) -> int:
    """The index of the newline ending the line ``i`` is on (the text's end for the last)."""
    end = text.find("\n", i)
    return len(text) if end < 0 else end


def _quoted(text: str, i: int, statement: tuple[int, int]) -> tuple[str, int]:
    """The quoted string or identifier opening at ``i`` (doubled quotes are one) and the
    index past its closing quote; ``statement`` (line, offset) is where its statement starts."""
    quote, j, value = text[i], i + 1, []
    while True:
        k = text.find(quote, j)
        if k < 0:
            raise _refuse(statement[0], text[statement[1]:statement[1] + 80], "an unterminated quote")
        value.append(text[j:k])
        if text.startswith(quote * 2, k):
            value.append(quote)
            j = k + 2
            continue
        return "".join(value), k + 1


# --------------------------------------------------------------------------- statements
class _Cursor:
    def __init__(self, statement: Statement) -> None:
        self.statement, self.tokens, self.pos = statement, statement.tokens, 0

    def fail(self, why: str) -> RolesFileError:
        return _refuse(self.statement.line, self.statement.text, why)

    def peek(self, *words: str) -> bool:
        for offset, word in enumerate(words):
            if self.pos + offset >= len(self.tokens) or self.tokens[self.pos + offset].upper != word:
                return False
        return True

    def accept(self, *words: str) -> bool:
        if self.peek(*words):
            self.pos += len(words)
            return True
        return False

    def expect(self, *words: str) -> None:
        if not self.accept(*words):
            raise self.fail(f"expected {' '.join(words)}")

    def name(self) -> str:
        """An identifier: bare (folded to lower case, as PostgreSQL does) or quoted."""
        if self.pos >= len(self.tokens) or self.tokens[self.pos].kind not in ("word", "ident"):
            raise self.fail("expected a name")
        token = self.tokens[self.pos]
        self.pos += 1
        return token.text if token.kind == "ident" else token.text.lower()

    def dotted_name(self) -> str:
        parts = [self.name()]
        while self.punct("."):
            parts.append(self.name())
        return ".".join(parts)

    def literal(self) -> str:
        if self.pos >= len(self.tokens) or self.tokens[self.pos].kind != "string":
            raise self.fail("expected a quoted literal")
        self.pos += 1
        return self.tokens[self.pos - 1].text

    def punct(self, char: str) -> bool:
        if self.pos < len(self.tokens) and self.tokens[self.pos].kind == "punct" and self.tokens[self.pos].text == char:
            self.pos += 1
            return True
        return False

    def end(self) -> None:
        if self.pos != len(self.tokens):
            raise self.fail("unexpected text after the statement")


def parse_roles_file(text: str) -> RolesFile:
    """Parse a roles object; raises :class:`RolesFileError` on anything pg_dumpall does not write."""
    result = RolesFile()
    for statement in split_statements(text):
        _statement(_Cursor(statement), result)
    return result


def _statement(c: _Cursor, result: RolesFile) -> None:
    line = c.statement.line
    if c.accept("SET"):
        c.name()
        if not (c.punct("=") or c.accept("TO")):
            raise c.fail("expected = after SET's parameter")
        if c.pos >= len(c.tokens):
            raise c.fail("SET without a value")
        return  # a session header: skipped
    if _tablespace(c):
        result.skipped.append(f"line {line}: tablespace statement (not restored: tablespaces are the platform's)")
        return
    if c.accept("CREATE", "ROLE"):
        result.role(c.name())
        c.end()
    elif c.accept("ALTER", "ROLE"):
        role = result.role(c.name())
        if c.accept("WITH"):
            role.attributes = _attributes(c)
            return
        database = None
        if c.accept("IN", "DATABASE"):
            database = c.name()
        c.expect("SET")
        parameter = c.dotted_name()
        c.expect("TO")
        values = [c.literal()]
        while c.punct(","):
            values.append(c.literal())
        c.end()
        role.settings.append(Setting(parameter, tuple(values), database))
    elif c.accept("GRANT"):
        _grant(c, result)
    elif c.accept("COMMENT", "ON", "ROLE"):
        role = result.role(c.name())
        c.expect("IS")
        role.comment = None if c.accept("NULL") else c.literal()
        c.end()
    elif c.accept("SECURITY", "LABEL"):
        if c.accept("FOR"):
            c.name()
        c.expect("ON", "ROLE")
        name = c.name()
        c.expect("IS")
        if not c.accept("NULL"):
            c.literal()
        c.end()
        result.skipped.append(f"line {line}: security label on role {name} (not restored: label providers "
                              "are the platform's)")
    else:
        raise c.fail("not a statement pg_dumpall --globals-only writes")


def _tablespace(c: _Cursor) -> bool:
    words = [t.upper for t in c.tokens]
    if words[:2] in (["CREATE", "TABLESPACE"], ["ALTER", "TABLESPACE"]) or words[:3] == ["COMMENT", "ON", "TABLESPACE"]:
        return True
    if words[:2] == ["SECURITY", "LABEL"] and "TABLESPACE" in words[:6]:
        return True
    if words[:1] in (["GRANT"], ["REVOKE"]):
        try:
            on = words.index("ON")
        except ValueError:
            return False
        return on + 1 < len(words) and words[on + 1] == "TABLESPACE"
    return False


def _attributes(c: _Cursor) -> list[str]:
    found = []
    while c.pos < len(c.tokens):
        token = c.tokens[c.pos]
        if token.upper in ATTRIBUTE_WORDS:
            found.append(token.upper)
            c.pos += 1
        elif c.accept("CONNECTION", "LIMIT"):
            if c.pos >= len(c.tokens) or c.tokens[c.pos].kind != "number":
                raise c.fail("expected a number after CONNECTION LIMIT")
            found.append(f"CONNECTION LIMIT {int(c.tokens[c.pos].text)}")
            c.pos += 1
        elif c.accept("VALID", "UNTIL"):
            found.append("VALID UNTIL '" + c.literal().replace("'", "''") + "'")
        elif token.upper in ("PASSWORD", "ENCRYPTED"):
            raise c.fail("a password (backups are taken with --no-role-passwords)")
        else:
            raise c.fail(f"an unknown role attribute {token.text!r}")
    return found


def _grant(c: _Cursor, result: RolesFile) -> None:
    line = c.statement.line
    words = [t.upper for t in c.tokens]
    if "PARAMETER" in words and "ON" in words:
        privileges = []
        while not c.peek("ON"):
            if c.accept("ALTER", "SYSTEM"):
                privileges.append("ALTER SYSTEM")
            elif c.accept("SET"):
                privileges.append("SET")
            elif c.accept("ALL"):
                c.accept("PRIVILEGES")
                privileges.append("ALL")
            else:
                raise c.fail("expected SET, ALTER SYSTEM or ALL")
            c.punct(",")
        c.expect("ON", "PARAMETER")
        parameter = c.dotted_name()
        c.expect("TO")
        grantee = c.name()
        option = c.accept("WITH", "GRANT", "OPTION")
        if c.accept("GRANTED", "BY"):
            c.name()
        c.end()
        result.parameter_grants.append(ParameterGrant(parameter, tuple(privileges), grantee, option, line))
        return
    role = c.name()
    c.expect("TO")
    member = c.name()
    admin, inherit, set_ = False, None, None
    if c.accept("WITH"):
        while True:
            if c.accept("ADMIN", "OPTION"):
                admin = True
            else:
                option = c.name().upper()
                value = c.name().upper()
                if option not in ("ADMIN", "INHERIT", "SET") or value not in ("TRUE", "FALSE"):
                    raise c.fail("expected ADMIN, INHERIT or SET with TRUE or FALSE")
                flag = value == "TRUE"
                if option == "ADMIN":
                    admin = flag
                elif option == "INHERIT":
                    inherit = flag
                else:
                    set_ = flag
            if not c.punct(","):
                break
    if c.accept("GRANTED", "BY"):
        c.name()
    c.end()
    result.memberships.append(Membership(role, member, admin, inherit, set_, line))
    result.role(member).member_of.append(role)


# --------------------------------------------------------------------------- which roles the archive reaches
def reached_roles(seeds: set[str], edges: list[tuple[str, str]], privileged: set[str]) -> set[str]:
    """The roles the archive reaches: ``seeds`` (owners, grantees, policy roles, the
    database's owner, ACL and role settings), their members (transitively: who acts
    through a granted role), and every role those are members of (transitively: whose
    privileges they use). Predefined ``pg_*`` roles and ``privileged`` ones (SUPERUSER,
    BYPASSRLS, REPLICATION, CREATEROLE) are never reached through a membership.
    ``edges`` are (role, member) pairs."""
    def excluded(name: str) -> bool:
        return name.startswith("pg_") or name in privileged

    reached = {s for s in seeds if not s.startswith("pg_") and s != "PUBLIC"}
    todo = list(reached)
    while todo:  # down: members of what the archive names
        current = todo.pop()
        for role, member in edges:
            if role == current and member not in reached and not excluded(member):
                reached.add(member)
                todo.append(member)
    todo = list(reached)
    while todo:  # up: what those are members of
        current = todo.pop()
        for role, member in edges:
            if member == current and role not in reached and not excluded(role):
                reached.add(role)
                todo.append(role)
    return reached
