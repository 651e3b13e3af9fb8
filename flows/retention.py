"""The ``retention`` flow: delete what the storage policy allows, report it as a table artifact.

Deployed on pool ``server`` with a daily schedule (deployments/prefect.yaml, ``retention/daily``,
``apply: true``); ``dashcam retention --dry-run|--apply`` runs the same logic without Prefect.
All decisions are :mod:`dashcam.storage`'s (docs/storage.md): this flow only plans, applies and
publishes. The artifact (key ``retention``) lists every deletion with its reason (a dry run: what
would be deleted) and the protected files.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from dashcam.settings import Settings


def _settings(settings: Settings | None) -> Settings:
    from blocks.config import run_settings

    return run_settings(settings)


def _gb(n: int) -> str:
    return f"{n / 1e9:.3f}"


@flow(name="retention", log_prints=False)
def retention(apply: bool = False, settings: Settings | None = None) -> dict:
    """Plan retention from the DB and the files; with ``apply`` delete the eligible files.

    Returns ``{"applied": bool, "deleted": [Decision dicts], "planned": [...], "protected": n,
    "freed_bytes": int}``. Raises :class:`dashcam.db.DatabaseError` when the DB cannot be reached
    (nothing deleted).
    """
    from prefect.artifacts import create_table_artifact

    from dashcam.db import make_engine
    from dashcam.storage import apply_retention, plan_retention

    logger = get_run_logger()
    s = _settings(settings)
    engine = make_engine(s.db_url)
    try:
        plan = plan_retention(engine, s)
        todo = [d for d in plan if d.action != "keep"]
        for d in todo:
            logger.info("%s %s %s: %s", "delete" if apply else "would delete", d.tier, d.path, d.reason)
        done = apply_retention(engine, s, todo) if apply else []
    finally:
        engine.dispose()
    shown = done if apply else todo
    protected = [d for d in plan if d.protected]
    rows: list[dict[str, str | None]] = [
        {
            "action": ("deleted" if d.action == "delete" else "recorded gone") if apply else f"would {d.action}",
            "tier": d.tier,
            "video_id": d.video_id,
            "path": d.path,
            "GB": _gb(d.size_bytes),
            "reason": d.reason,
        }
        for d in shown
    ]
    rows += [
        {
            "action": "protected",
            "tier": d.tier,
            "video_id": d.video_id,
            "path": d.path,
            "GB": _gb(d.size_bytes),
            "reason": d.protected,
        }
        for d in protected
    ]
    freed = sum(d.size_bytes for d in shown if d.action == "delete")
    create_table_artifact(
        key="retention",
        table=rows or [{"action": "-", "reason": "nothing to delete"}],
        description=f"retention {'applied' if apply else 'dry run'}: {len(shown)} files, "
        f"{_gb(freed)} GB {'freed' if apply else 'would be freed'}, "
        f"{len(protected)} protected",
    )
    logger.info(
        "%s %d files (%s GB); %d protected",
        "deleted" if apply else "would delete",
        len(shown),
        _gb(freed),
        len(protected),
    )
    return {
        "applied": apply,
        "deleted": [d.as_dict() for d in done],
        "planned": [d.as_dict() for d in todo],
        "protected": len(protected),
        "freed_bytes": freed,
    }
