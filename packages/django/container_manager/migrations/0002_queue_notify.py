"""Announce queued jobs on PostgreSQL with NOTIFY, so idle workers wake at once instead of polling.

Triggers rather than application code: every way a row becomes claimable (create_job, bulk inserts,
the admin, a requeue, a worker's release) is announced, and it costs no extra round trip. NOTIFY is
transactional, so a worker is woken only once the job is committed and visible to its claim. The
payload is empty: PostgreSQL folds identical notifications of one transaction, so a bulk insert of
a thousand jobs wakes each worker once. Other databases keep polling (POLL_INTERVAL).
"""

from django.db import migrations

# Must match container_manager.worker.wakeup.QUEUE_CHANNEL (a test checks they agree).
CHANNEL = "container_manager_queue"
TABLE = "container_manager_containerjob"

CREATE = [
    f"""
CREATE OR REPLACE FUNCTION container_manager_announce_queued() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
""",
    f"""
CREATE TRIGGER container_manager_job_queued
    AFTER INSERT ON {TABLE}
    FOR EACH ROW WHEN (NEW.status IN ('pending', 'retrying'))
    EXECUTE FUNCTION container_manager_announce_queued()
""",
    f"""
CREATE TRIGGER container_manager_job_requeued
    AFTER UPDATE OF status ON {TABLE}
    FOR EACH ROW WHEN (NEW.status IN ('pending', 'retrying') AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION container_manager_announce_queued()
""",
]

DROP = [
    f"DROP TRIGGER IF EXISTS container_manager_job_requeued ON {TABLE}",
    f"DROP TRIGGER IF EXISTS container_manager_job_queued ON {TABLE}",
    "DROP FUNCTION IF EXISTS container_manager_announce_queued()",
]


def _on_postgresql(statements):  # type: ignore[no-untyped-def]
    def run(apps, schema_editor):  # type: ignore[no-untyped-def]
        if schema_editor.connection.vendor == "postgresql":
            for sql in statements:
                schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("container_manager", "0001_initial")]

    operations = [migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP), elidable=False)]
