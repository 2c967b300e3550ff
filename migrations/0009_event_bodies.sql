CREATE TABLE "endpoint_health" (
	"tenant_id" text NOT NULL,
	"url" text NOT NULL,
	"state" text NOT NULL,
	"open_until" timestamp with time zone,
	"last_error" text,
	"last_error_at" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "endpoint_health_tenant_id_url_pk" PRIMARY KEY("tenant_id","url")
);
--> statement-breakpoint
CREATE TABLE "event_bodies" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"tenant_id" text NOT NULL,
	"task_id" text NOT NULL,
	"event_type" text NOT NULL,
	"head" text NOT NULL,
	"data" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "deliveries" ADD COLUMN "body_id" bigint;--> statement-breakpoint
ALTER TABLE "deliveries" ADD COLUMN "composed_claims" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE INDEX "event_bodies_created_idx" ON "event_bodies" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "deliveries_body_idx" ON "deliveries" USING btree ("body_id") WHERE body_id is not null;--> statement-breakpoint
-- hand-written: begin
-- During a rolling upgrade the previous release's deliverer would claim a row whose
-- body lives in event_bodies and send its payload column ('') as the body. Its claim
-- does not bump composed_claims; this release's does. A BEFORE trigger returning NULL
-- skips that row for that statement only, so the old claim just returns fewer rows and
-- the row stays pending for this release. (The WHEN runs without calling the function
-- for every other update.) Contract step, once no release before 0009 runs: drop both.
CREATE FUNCTION "deliveries_skip_claim_without_composer"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "deliveries_claim_needs_composer" BEFORE UPDATE ON "deliveries" FOR EACH ROW
  WHEN (NEW.body_id IS NOT NULL AND NEW.lease_token IS NOT NULL AND NEW.lease_token IS DISTINCT FROM OLD.lease_token
        AND NEW.composed_claims = OLD.composed_claims)
  EXECUTE FUNCTION "deliveries_skip_claim_without_composer"();
-- hand-written: end
