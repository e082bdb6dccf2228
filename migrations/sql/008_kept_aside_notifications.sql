-- Notifications Apple signed (signature and certificate chain verified) that
-- name another app or environment than the configured one
-- (INVALID_APP_IDENTIFIER, INVALID_ENVIRONMENT). The webhook refuses them
-- from the ledger (they change no subscription) but keeps them here, so a
-- misconfigured APPSTORE_BUNDLE_ID or notification URL shows in
-- `storesync status` instead of losing notifications silently. Forgeries
-- never get here: they fail verification before the identity checks.
--
-- One row per notificationUUID: Apple retries a refused notification, and
-- each redelivery only moves last_received_at and counts.
CREATE TABLE kept_aside_notifications (
    notification_uuid     uuid PRIMARY KEY,
    reason                text NOT NULL,          -- the verification status: INVALID_APP_IDENTIFIER, …
    detail                text NOT NULL DEFAULT '',
    notification_type     text NOT NULL DEFAULT '',
    subtype               text NOT NULL DEFAULT '',
    claimed_bundle_id     text NOT NULL DEFAULT '',
    claimed_app_apple_id  bigint NOT NULL DEFAULT 0,
    claimed_environment   text NOT NULL DEFAULT '',
    signed_payload        text NOT NULL,
    received_at           timestamptz NOT NULL DEFAULT now(),
    last_received_at      timestamptz NOT NULL DEFAULT now(),
    deliveries            integer NOT NULL DEFAULT 1
);
CREATE INDEX kept_aside_notifications_reason ON kept_aside_notifications (reason, last_received_at);
