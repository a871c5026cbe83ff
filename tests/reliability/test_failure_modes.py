"""Every row of the failure-mode table (cases.py), staged against the real PostgreSQL and
moto servers (through a fault proxy where the fault is the store's), asserting for each:

(a) the documented exit code and exactly one error line, worded as docs/failure-modes.md says;
(b) nothing that looks complete: no dump without its manifest (or differing from it), no
    open multipart upload (except where the endpoint is gone and cannot be told to abort);
(c) for restores that end before any change, the target database exactly as it was
    (digest of relations, rows, policies and roles before and after) and no safety backup
    written; a restore that fails after changing it (exit 11) must say how to go back, and
    its scenario runs that;
(d) a restore's printed report says the status its exit code means (REFUSED for 3, 4 and 8,
    FAILED-AFTER-CHANGES for 11, FAILED otherwise), as its report file records it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.reliability.cases import CASES, Case
from tests.reliability.scenarios import SCENARIOS, Outcome, staged

RESTORE_CASES = [c for c in CASES if c.command == "restore"]
UNCHANGED_CASES = [c for c in RESTORE_CASES if c.exit_code != 11]
#: the status a restore's report gives an exit code (restore.py: configuration, preflight and
#: safety refusals change nothing; anything else fails before or after the change)
STATUS_OF_EXIT = {3: "refused", 4: "refused", 8: "refused", 11: "failed-after-changes"}
FACT_CASES = [c for c in CASES if c.id not in ("bucket-missing", "wrong-region", "database-unreachable",
                                                "access-denied-no-permission", "access-denied-read-only")
              and c.command == "backup"] + RESTORE_CASES


def _ids(cases: list[Case] | tuple[Case, ...]) -> list[str]:
    return [c.id for c in cases]


@pytest.fixture(scope="session")
def outcome(request: pytest.FixtureRequest) -> Iterator[Callable[[Case], Outcome]]:
    with staged(request) as get:
        yield get


def test_every_row_has_a_scenario() -> None:
    assert sorted(SCENARIOS) == sorted(_ids(CASES))


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_exit_code_is_the_documented_one(case: Case, outcome: Callable[[Case], Outcome]) -> None:
    run = outcome(case).run
    assert run.returncode == case.exit_code, str(run)


@pytest.mark.parametrize("case", [c for c in CASES if c.exit_code != 0], ids=_ids([c for c in CASES if c.exit_code != 0]))
def test_one_error_line_says_what_the_page_says(case: Case, outcome: Callable[[Case], Outcome]) -> None:
    run = outcome(case).run
    messages = [e["message"] for e in run.errors]
    assert len(messages) == 1 and case.pattern().fullmatch(messages[0]), str(run)


@pytest.mark.parametrize("case", [c for c in CASES if c.exit_code == 0], ids=_ids([c for c in CASES if c.exit_code == 0]))
def test_success_logs_no_error_and_says_so(case: Case, outcome: Callable[[Case], Outcome]) -> None:
    run = outcome(case).run
    infos = [r["message"] for r in run.log if r.get("level") == "info"]
    assert (run.errors, any(case.pattern().fullmatch(m) for m in infos)) == ([], True), str(run)


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_nothing_looks_complete_that_is_not(case: Case, outcome: Callable[[Case], Outcome]) -> None:
    result = outcome(case)
    assert result.bucket_state() == result.expected_bucket_state(), str(result.run)


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_no_traceback_reaches_the_operator(case: Case, outcome: Callable[[Case], Outcome]) -> None:
    run = outcome(case).run
    assert "Traceback" not in run.stderr + run.stdout, str(run)


@pytest.mark.parametrize("case", UNCHANGED_CASES, ids=_ids(UNCHANGED_CASES))
def test_restore_leaves_the_target_unchanged(case: Case, outcome: Callable[[Case], Outcome]) -> None:
    result = outcome(case)
    assert result.target_before is not None and result.target_before == result.target_after


@pytest.mark.parametrize("case", FACT_CASES, ids=_ids(FACT_CASES))
def test_case_specific_guarantees(case: Case, outcome: Callable[[Case], Outcome]) -> None:
    facts = outcome(case).facts
    assert facts and {name: True for name in facts} == facts


@pytest.mark.parametrize("case", UNCHANGED_CASES, ids=_ids(UNCHANGED_CASES))
def test_restore_that_changes_nothing_writes_no_safety_backup(case: Case, outcome: Callable[[Case], Outcome]) -> None:
    result = outcome(case)
    assert result.safety_dir is None or not result.safety_dir.exists()


@pytest.mark.parametrize("case", RESTORE_CASES, ids=_ids(RESTORE_CASES))
def test_restore_prints_a_report_saying_so(case: Case, outcome: Callable[[Case], Outcome]) -> None:
    result = outcome(case)
    status = STATUS_OF_EXIT.get(case.exit_code, "failed")
    printed = [line for line in result.run.stdout.splitlines() if line.startswith("status:")]
    assert (printed, result.recorded_status in (None, status)) == ([f"status:            {status.upper()}"], True), \
        str(result.run)
