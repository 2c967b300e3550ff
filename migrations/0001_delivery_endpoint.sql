ALTER TABLE "deliveries" ADD COLUMN "endpoint" text;--> statement-breakpoint
CREATE INDEX "deliveries_endpoint_pending_idx" ON "deliveries" USING btree ("endpoint") WHERE status = 'pending';--> statement-breakpoint
-- backfill: the origin (scheme://host[:port]) of rows written before this column existed
UPDATE "deliveries" SET "endpoint" = lower(substring("callback_url" from '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]+')) WHERE "endpoint" IS NULL;
