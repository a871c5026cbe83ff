"""What an archive's definitions use outside what they create (archivecheck.parse_definitions)."""

from agent_bom_backup.archivecheck import parse_definitions

SCRIPT = """SET default_tablespace = '';
CREATE COLLATION public.mine (provider = libc, locale = 'C');
SET default_tablespace = fast;
CREATE TABLE public.t (a text COLLATE pg_catalog."de_DE", b text COLLATE public.mine);
SET default_tablespace = "Slow Disk";
CREATE INDEX t_a ON public.t USING gin (to_tsvector('pg_catalog.german'::regconfig, a));
CREATE TEXT SEARCH CONFIGURATION public.mine_ts (COPY = pg_catalog.simple);
CREATE INDEX t_b ON public.t USING gin (to_tsvector('public.mine_ts'::regconfig, b));
"""


def test_tablespaces_are_read_plain_and_quoted() -> None:
    assert parse_definitions(SCRIPT).tablespaces == ["Slow Disk", "fast"]


def test_the_default_tablespace_is_no_need() -> None:
    assert parse_definitions("SET default_tablespace = '';\nCREATE TABLE t (a int);\n").tablespaces == []


def test_collations_the_archive_does_not_create_are_needed() -> None:
    assert parse_definitions(SCRIPT).collations == [("pg_catalog", "de_DE")]


def test_text_search_configurations_the_archive_does_not_create_are_needed() -> None:
    assert parse_definitions(SCRIPT).text_search_configurations == [("pg_catalog", "german")]
