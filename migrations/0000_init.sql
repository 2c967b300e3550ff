CREATE TABLE "deliveries" (
	"id" text PRIMARY KEY NOT NULL,
	"tenant_id" text NOT NULL,
	"watch_id" text NOT NULL,
	"event_type" text NOT NULL,
	"terminal" boolean NOT NULL,
	"callback_url" text NOT NULL,
	"payload" text NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"retry_step" integer DEFAULT 0 NOT NULL,
	"next_attempt_at" timestamp with time zone DEFAULT now() NOT NULL,
	"lease_token" uuid,
	"last_response_status" integer,
	"last_error" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"delivered_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "delivery_attempts" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"delivery_id" text NOT NULL,
	"attempted_at" timestamp with time zone NOT NULL,
	"duration_ms" integer NOT NULL,
	"response_status" integer,
	"error" text,
	"response_excerpt" text
);
--> statement-breakpoint
CREATE TABLE "task_snapshots" (
	"tenant_id" text NOT NULL,
	"task_id" text NOT NULL,
	"status" text NOT NULL,
	"snapshot" text NOT NULL,
	"polls" integer DEFAULT 0 NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "tenants" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"api_key_hash" text NOT NULL,
	"signing_secret" text NOT NULL,
	"previous_signing_secret" text,
	"previous_secret_expires_at" timestamp with time zone,
	"upstream_base_url" text,
	"upstream_api_key_enc" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"disabled_at" timestamp with time zone,
	CONSTRAINT "tenants_api_key_hash_unique" UNIQUE("api_key_hash")
);
--> statement-breakpoint
CREATE TABLE "upstream_tasks" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"tenant_id" text NOT NULL,
	"task_id" text NOT NULL,
	"next_poll_at" timestamp with time zone NOT NULL,
	"lease_token" uuid,
	"polls" integer DEFAULT 0 NOT NULL,
	"unauthorized_streak" smallint DEFAULT 0 NOT NULL,
	"error_streak" smallint DEFAULT 0 NOT NULL,
	"processing_seen" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "watches" (
	"id" text PRIMARY KEY NOT NULL,
	"tenant_id" text NOT NULL,
	"task_id" text NOT NULL,
	"callback_url" text NOT NULL,
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"events" text[] NOT NULL,
	"status" text DEFAULT 'watching' NOT NULL,
	"processing_sent" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "deliveries_due_idx" ON "deliveries" USING btree ("next_attempt_at") WHERE status = 'pending';--> statement-breakpoint
CREATE INDEX "deliveries_watch_idx" ON "deliveries" USING btree ("watch_id","created_at");--> statement-breakpoint
CREATE INDEX "delivery_attempts_delivery_idx" ON "delivery_attempts" USING btree ("delivery_id","id");--> statement-breakpoint
CREATE UNIQUE INDEX "task_snapshots_pk" ON "task_snapshots" USING btree ("tenant_id","task_id");--> statement-breakpoint
CREATE UNIQUE INDEX "upstream_tasks_tenant_task_uq" ON "upstream_tasks" USING btree ("tenant_id","task_id");--> statement-breakpoint
CREATE INDEX "upstream_tasks_due_idx" ON "upstream_tasks" USING btree ("next_poll_at");--> statement-breakpoint
CREATE UNIQUE INDEX "watches_tenant_task_callback_uq" ON "watches" USING btree ("tenant_id","task_id","callback_url");--> statement-breakpoint
CREATE INDEX "watches_tenant_id_idx" ON "watches" USING btree ("tenant_id","id");--> statement-breakpoint
CREATE INDEX "watches_tenant_task_active_idx" ON "watches" USING btree ("tenant_id","task_id") WHERE status = 'watching';