CREATE TABLE "workers" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"heartbeat_at" timestamp with time zone DEFAULT now() NOT NULL,
	"dead_at" timestamp with time zone,
	"owned" integer DEFAULT 0 NOT NULL,
	"host" text,
	"pid" integer,
	"version" text
);
--> statement-breakpoint
ALTER TABLE "upstream_tasks" ADD COLUMN "owner_id" bigint;--> statement-breakpoint
CREATE INDEX "workers_live_idx" ON "workers" USING btree ("heartbeat_at") WHERE dead_at is null;--> statement-breakpoint
CREATE INDEX "upstream_tasks_unowned_due_idx" ON "upstream_tasks" USING btree ("next_poll_at") WHERE owner_id is null;--> statement-breakpoint
CREATE INDEX "upstream_tasks_owner_idx" ON "upstream_tasks" USING btree ("owner_id") WHERE owner_id is not null;