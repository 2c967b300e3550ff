CREATE TABLE "duration_learner" (
	"id" smallint PRIMARY KEY NOT NULL,
	"watermark_at" timestamp with time zone NOT NULL,
	"watermark_tenant" text DEFAULT '' NOT NULL,
	"watermark_task" text DEFAULT '' NOT NULL
);
--> statement-breakpoint
CREATE TABLE "task_durations" (
	"tenant_id" text NOT NULL,
	"capability" text NOT NULL,
	"action" text NOT NULL,
	"model" text NOT NULL,
	"histogram" jsonb NOT NULL,
	"samples" bigint DEFAULT 0 NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX "task_durations_kind_uq" ON "task_durations" USING btree ("tenant_id","capability","action","model");--> statement-breakpoint
CREATE INDEX "task_durations_updated_idx" ON "task_durations" USING btree ("updated_at");