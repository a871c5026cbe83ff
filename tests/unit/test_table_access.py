"""Tables left out by configuration (--exclude-table) and the row-security completeness rule."""

from __future__ import annotations

import pytest

from agent_bom_backup.completeness import Shortfall, TableStats, require_every_row, shortfalls
from agent_bom_backup.errors import ConfigError, ExitCode, VerifyError
from agent_bom_backup.pgcatalog import TableCount
from agent_bom_backup.report import RestoreReport, exclusion_lines
from agent_bom_backup.tableaccess import Excluded, Unreadable, dump_pattern, parse_name, refusal, without_excluded
from tests.unit.samples import manifest

KEYS = "public.agent_bom_tenant_binding_keys"


@pytest.mark.parametrize(("text", "expected"), [
    ("public.agent_bom_tenant_binding_keys", ("public", "agent_bom_tenant_binding_keys")),
    ("Public.Keys", ("public", "keys")),
    ('"Tenant Keys"."Signing.Keys"', ("Tenant Keys", "Signing.Keys")),
    ('app."say ""hi"""', ("app", 'say "hi"')),
    (" public.keys ", ("public", "keys")),
], ids=["plain", "unquoted-folds-to-lower-case", "quoted-keeps-case-dots-spaces", "doubled-quote", "trimmed"])
def test_names_follow_sql_rules(text: str, expected: tuple[str, str]) -> None:
    assert parse_name(text) == expected


@pytest.mark.parametrize("text", ["keys", "a.b.c", '"open.keys', "public.", ".keys"],
                         ids=["no-schema", "three-parts", "unclosed-quote", "empty-table", "empty-schema"])
def test_a_malformed_name_is_a_configuration_error(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_name(text)
    assert caught.value.exit_code == ExitCode.CONFIG


def test_the_pg_dump_pattern_quotes_each_part_so_nothing_is_a_wildcard() -> None:
    assert dump_pattern("Tenant Keys", 'Sig*."x"') == '"Tenant Keys"."Sig*.""x"""'


def test_the_fingerprint_drops_every_item_of_an_excluded_table_and_keeps_its_neighbours() -> None:
    fingerprint = {
        "tables": ["r public.agent_bom_tenant_binding_keys", "r public.agent_bom_tenant_binding_keys_log"],
        "columns": ["public.agent_bom_tenant_binding_keys.key_id text not null", "public.other.key_id text"],
        "indexes": ["CREATE UNIQUE INDEX k_pkey ON public.agent_bom_tenant_binding_keys USING btree (key_id)"],
        "functions": ["public.abom_verify_tenant_binding_claim(text) f 0123"],
    }
    excluded = [Excluded("public", "agent_bom_tenant_binding_keys", KEYS, True)]
    assert without_excluded(fingerprint, excluded) == {
        "tables": ["r public.agent_bom_tenant_binding_keys_log"],
        "columns": ["public.other.key_id text"],
        "indexes": [],
        "functions": ["public.abom_verify_tenant_binding_claim(text) f 0123"],
    }


def test_the_refusal_names_the_table_its_owner_and_the_three_ways_out() -> None:
    error = refusal("agent_bom_maintenance", [Unreadable("table", KEYS, "agent_bom")])
    text = str(error)
    assert (error.exit_code, "\n" in text) == (ExitCode.REFUSED, False)
    for part in (f"table {KEYS} (owner agent_bom)", "back up as a role that may read it",
                 f"GRANT SELECT ON {KEYS} TO agent_bom_maintenance", "the backup then holds those secrets",
                 "--encrypt-to", "SSE-KMS", f"--exclude-table {KEYS}", "AGENT_BOM_BACKUP_EXCLUDE_TABLES",
                 "controlPlane.backup.dump.excludeTables", "nothing written"):
        assert part in text, part


def test_formats_1_and_2_read_as_excluding_nothing() -> None:
    assert (manifest(1).excluded_tables, manifest(2).excluded_tables) == ([], [])


def test_the_manifest_reads_its_excluded_tables() -> None:
    assert manifest(2, excluded_tables=[KEYS]).excluded_tables == [KEYS]


def test_the_restore_summary_lists_the_exclusion_and_upstreams_recreate_steps() -> None:
    lines = exclusion_lines([KEYS])
    assert lines[:2] == ["not in this backup, by configuration (--exclude-table):", f"  - {KEYS}"]
    assert "alembic stamp 20260818_01 && alembic upgrade head" in lines[2]


def test_a_report_without_exclusions_says_nothing_about_them() -> None:
    report = RestoreReport(backup_uri="s3://b/k", operator="me", approval=None, started_at="2026-12-07T00:00:00+00:00")
    assert "by configuration" not in report.summary()


# --------------------------------------------------------------------------- completeness
T = ("public", "audit_log")


def _counts(rows: int) -> list[TableCount]:
    return [TableCount("public", "audit_log", rows, None)]


@pytest.mark.parametrize(("counted", "before", "after", "hidden"), [
    (1000, TableStats(1000, 1000, 0), TableStats(1000, 1000, 0), False),
    (950, TableStats(1000, 1000, 0), TableStats(1000, 1000, 0), True),
    (7, TableStats(8, 8, 0), TableStats(8, 8, 0), True),
    (0, TableStats(8, 8, 0), TableStats(8, 8, 0), True),
    (1010, TableStats(1000, 1000, 0), TableStats(1030, 1030, 0), False),
    (990, TableStats(1000, 1000, 0), TableStats(990, 1000, 10), False),
    (980, TableStats(1000, 1000, 0), TableStats(990, 1000, 10), True),
    (1200, TableStats(1000, 1000, 0), TableStats(1000, 1000, 0), False),
    (300, TableStats(0, 0, 0, recorded=False, reltuples=900), TableStats(0, 0, 0, False, 900), True),
    (900, TableStats(0, 0, 0, recorded=False, reltuples=900), TableStats(0, 0, 0, False, 900), False),
], ids=["quiet-and-complete", "50-of-1000-hidden", "1-of-8-hidden", "every-row-of-8-hidden",
        "inserts-during-the-backup", "deletes-during-the-backup", "more-missing-than-deleted",
        "stale-statistics-below-the-count", "statistics-reset-and-hidden", "statistics-reset-and-complete"])
def test_a_table_may_fall_short_of_its_live_rows_only_by_what_was_written_meanwhile(
        counted: int, before: TableStats, after: TableStats, hidden: bool) -> None:
    assert bool(shortfalls(_counts(counted), {T}, {T: before}, {T: after})) is hidden


def test_a_table_the_role_sees_in_full_is_not_compared() -> None:
    assert shortfalls(_counts(0), set(), {T: TableStats(8, 8, 0)}, {T: TableStats(8, 8, 0)}) == []


def test_hidden_rows_fail_with_exit_7_after_resampling_the_statistics() -> None:
    samples = []

    def resample() -> dict:
        samples.append(1)
        return {T: TableStats(1000, 1000, 0)}

    with pytest.raises(VerifyError) as caught:
        require_every_row(_counts(950), {T}, {T: TableStats(1000, 1000, 0)}, resample, sleep=lambda _s: None)
    assert (caught.value.exit_code, len(samples)) == (ExitCode.VERIFY, 3)
    assert "public.audit_log (950 rows seen, 1000 live)" in caught.value.message


def test_statistics_flushed_late_clear_a_shortfall() -> None:
    """A writer's deletes committed before the snapshot show in the statistics a moment later."""
    answers = iter([{T: TableStats(1000, 1000, 0)}, {T: TableStats(990, 1000, 10)}])
    require_every_row(_counts(990), {T}, {T: TableStats(1000, 1000, 0)}, lambda: next(answers),
                      sleep=lambda _s: None)


def test_shortfall_describes_a_reset() -> None:
    assert "statistics reset since" in Shortfall("public.t", 1, 9, 0, reset=True).describe()
