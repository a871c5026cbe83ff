"""The plan's judgement of other sessions on the target (sessions.check_sessions)."""

import pytest

from agent_bom_backup.errors import RefusedError
from agent_bom_backup.sessions import ConnectLock, Session, check_sessions

APP = Session(pid=101, user="agent_bom_app", application_name="api", client="10.0.0.7", state="idle",
              can_terminate=True)


def _refusal(sessions: list[Session], terminate: bool) -> str:
    with pytest.raises(RefusedError) as caught:
        check_sessions(sessions, database="agent_bom", restore_role="admin", terminate=terminate)
    return str(caught.value)


def test_no_other_session_passes() -> None:
    check_sessions([], database="agent_bom", restore_role="admin", terminate=False)


def test_a_session_is_refused_without_terminate_sessions() -> None:
    assert "pid 101 user agent_bom_app application 'api' from 10.0.0.7 (idle)" in _refusal([APP], False)


def test_the_refusal_names_the_option() -> None:
    assert "--terminate-sessions" in _refusal([APP], False)


def test_a_session_the_restore_role_may_end_passes_with_terminate_sessions() -> None:
    check_sessions([APP], database="agent_bom", restore_role="admin", terminate=True)


@pytest.mark.parametrize(
    ("session", "why"),
    [
        (Session(1, "postgres", None, None, "active", superuser=True, can_terminate=True), "is a superuser"),
        (Session(2, "admin", "psql", None, "idle", is_restore_role=True, can_terminate=True),
         "is the restore role itself"),
        (Session(3, "ops", "psql", None, "idle", inherits_restore_role=True, can_terminate=True),
         "is a member of the restore role"),
    ],
    ids=["superuser", "restore-role", "member-of-restore-role"],
)
def test_sessions_revoke_cannot_stop_are_refused_by_name(session: Session, why: str) -> None:
    assert why in _refusal([session], True)


def test_a_session_the_restore_role_may_not_end_names_the_grant() -> None:
    blocked = Session(4, "agent_bom_app", "api", None, None, can_terminate=False)
    assert "GRANT pg_signal_backend TO admin" in _refusal([blocked], True)


def test_the_undo_grants_back_each_revoked_entry() -> None:
    lock = ConnectLock("agent_bom", revoked=[("", False), ("App User", True)], granted_to_restore_role="admin")
    assert lock.undo_statements() == [
        "GRANT CONNECT ON DATABASE agent_bom TO PUBLIC",
        'GRANT CONNECT ON DATABASE agent_bom TO "App User" WITH GRANT OPTION',
        "REVOKE CONNECT ON DATABASE agent_bom FROM admin",
    ]
