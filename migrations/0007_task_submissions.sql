CREATE TABLE "task_submissions" (
	"tenant_id" text NOT NULL,
	"idempotency_key" text NOT NULL,
	"request_hash" text NOT NULL,
	"state" text NOT NULL,
	"attempt_token" uuid NOT NULL,
	"lease_until" timestamp with time zone NOT NULL,
	"path" text NOT NULL,
	"task_id" text,
	"watch_id" text,
	"upstream_status" integer,
	"upstream_body" text,
	"capability" text,
	"action" text,
	"model" text,
	"response_status" integer,
	"response" text,
	"detail" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX "task_submissions_key_uq" ON "task_submissions" USING btree ("tenant_id","idempotency_key");--> statement-breakpoint
CREATE INDEX "task_submissions_expires_idx" ON "task_submissions" USING btree ("expires_at");--> statement-breakpoint
CREATE INDEX "task_submissions_watch_idx" ON "task_submissions" USING btree ("watch_id") WHERE watch_id is not null;