ALTER TABLE "tenants" ADD COLUMN "api_rate_per_s" real;--> statement-breakpoint
ALTER TABLE "tenants" ADD COLUMN "max_active_watches" integer;--> statement-breakpoint
ALTER TABLE "tenants" ADD COLUMN "max_polls_per_s" real;