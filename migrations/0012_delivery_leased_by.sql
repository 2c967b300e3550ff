ALTER TABLE "deliveries" ADD COLUMN "leased_by" bigint;--> statement-breakpoint
CREATE INDEX "deliveries_leased_by_idx" ON "deliveries" USING btree ("leased_by") WHERE lease_token is not null;