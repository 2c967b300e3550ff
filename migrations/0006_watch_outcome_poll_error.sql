ALTER TABLE "upstream_tasks" ADD COLUMN "last_poll_error" text;--> statement-breakpoint
ALTER TABLE "upstream_tasks" ADD COLUMN "last_poll_error_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "watches" ADD COLUMN "outcome" text;--> statement-breakpoint
-- ---- hand-written (re-apply after regenerating): backfill watches.outcome for watches
-- that ended before the column existed. The event that ended a watch is its newest
-- terminal delivery; a watch that did not subscribe to its outcome has none, and then
-- the task's final snapshot says which it was (a give-up it did not subscribe to stays null).
UPDATE "watches" w SET "outcome" = d.event_type
  FROM (SELECT DISTINCT ON (watch_id) watch_id, event_type FROM "deliveries" WHERE terminal ORDER BY watch_id, created_at DESC, id DESC) d
 WHERE d.watch_id = w.id AND w.outcome IS NULL;
--> statement-breakpoint
UPDATE "watches" w SET "outcome" = 'task.' || s.status
  FROM "task_snapshots" s
 WHERE s.tenant_id = w.tenant_id AND s.task_id = w.task_id AND w.outcome IS NULL
   AND w.status IN ('delivering', 'delivered', 'undeliverable') AND s.status IN ('completed', 'failed', 'cancelled');
