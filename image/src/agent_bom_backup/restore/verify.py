"""Phase 5, **verify**: the restored database compared with the manifest (:mod:`..verify`),
with what the report already lists as not restored accounted for.
"""

from __future__ import annotations


import psycopg

from .. import dbstate
from ..errors import VerifyError
from ..verify import CompareOptions, VerificationResult, inspection_settings, verify_database
from .context import RestoreContext
from .journal import Journal


def _verify(ctx: RestoreContext, journal: Journal) -> VerificationResult:
    target, manifest, config = ctx.target, ctx.manifest, ctx.config
    session = target.session.inspecting(inspection_settings(manifest))
    try:
        with target.conn_info.connect(session) as conn:
            result = verify_database(conn, manifest, CompareOptions(
                owners=not config.no_owner, privileges=not config.no_privileges,
                sees_every_row=target.role.sees_every_row, database_state=not ctx.scratch,
                restore_role=target.role.name, accounted=_accounted(ctx, journal)))
    except psycopg.Error as exc:
        raise VerifyError(f"verification failed: cannot read the restored database: "
                          f"{str(exc).strip().splitlines()[0]}") from None
    journal.done.verification = result
    if not result.ok:
        problems = result.problems()
        raise VerifyError(
            f"verification failed: restored database differs from the backup: {problems[0]}"
            + (f" (and {len(problems) - 1} more, see the report)" if len(problems) > 1 else "")
        )
    return result


def _accounted(ctx: RestoreContext, journal: Journal) -> dict[str, set[str]]:
    """Fingerprint lines the report already lists: items not restored (each with its
    statement) and the CREATE on public granted in place of the database's owner."""
    accounted: dict[str, set[str]] = {}
    for item in journal.done.not_restored:
        category, _, line = str(item["item"]).partition(": ")
        accounted.setdefault(category, set()).add(line.removeprefix("not in the backup: "))
    for owner in ctx.plan.public_grants:
        accounted.setdefault("grants", set()).add(f"schema public {owner} CREATE")
    # held back while CONNECT is revoked, applied once verified (_open_with_recorded_acl)
    accounted.setdefault(dbstate.DATABASE_CATEGORY, set()).update(ctx.deferred_acl)
    return accounted
