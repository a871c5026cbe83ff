"""What the executing phases work with: the plan and everything it was made from, the
journal of changes (journal.py), and what the change holds while it runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BackupError
from ..manifest import BackupKeys, Manifest
from ..pgclients import PgClient
from ..report import RestoreReport
from ..roles import RolePlan
from ..sessions import ConnectLock
from ..storage import Storage
from .config import RestoreConfig, _scratch
from .journal import GoBack, Journal
from .plan import RestorePlan
from .target import TargetInfo


@dataclass
class RestoreContext:
    """What the executor works with: the plan and everything it was made from."""

    config: RestoreConfig
    storage: Storage
    keys: BackupKeys
    manifest: Manifest
    target: TargetInfo
    client: PgClient
    plan: RestorePlan
    role_plan: RolePlan | None
    report: RestoreReport
    scratch_parent: Path
    connect_lock: ConnectLock | None = None
    #: database ACL lines (fingerprint form) held back while CONNECT is revoked: the recorded
    #: ACL is applied when the door opens after verification (_open_with_recorded_acl)
    deferred_acl: set[str] = field(default_factory=set)
    #: a scratch restore (verify --deep without a superuser): database-level state is left out
    scratch: bool = field(init=False)
    journal: Journal = field(init=False)

    def __post_init__(self) -> None:
        self.scratch = _scratch(self.config)
        self.journal = Journal(self.report, GoBack(
            database=self.target.info.database, display=self.target.conn_info.display(),
            approval=self.config.approval, identity_file=self.config.identity_file,
            encrypted=self.manifest.encryption is not None, target_was_empty=self.plan.target_objects == 0,
            client=self.client))

    @property
    def changes(self) -> list[str]:
        return self.journal.changes

    @property
    def target_changed(self) -> bool:
        return self.journal.target_changed

    @property
    def report_path(self) -> Path | None:
        return self.journal.report_path

    @report_path.setter
    def report_path(self, path: Path | None) -> None:
        self.journal.report_path = path


@dataclass
class RestoreOutcome:
    report: RestoreReport
    error: BackupError | None = None


def _recovery(ctx: RestoreContext) -> str:
    """How to go back to what the target held before this restore (:class:`journal.GoBack`)."""
    return ctx.journal.recovery()
