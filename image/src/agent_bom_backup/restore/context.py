"""What the executing phases work with: the plan and everything it was made from, and what
the change holds while it runs. The journal of changes (journal.py) is handed to the phases
that change the target, beside it."""

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
    scratch_parent: Path
    connect_lock: ConnectLock | None = None
    #: database ACL lines (fingerprint form) held back while CONNECT is revoked: the recorded
    #: ACL is applied when the door opens after verification (_open_with_recorded_acl)
    deferred_acl: set[str] = field(default_factory=set)
    #: a scratch restore (verify --deep without a superuser): database-level state is left out
    scratch: bool = field(init=False)

    def __post_init__(self) -> None:
        self.scratch = _scratch(self.config)


@dataclass
class RestoreOutcome:
    report: RestoreReport
    error: BackupError | None = None

