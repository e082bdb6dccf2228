-- How far a finished backfill window is known complete. A window read
-- before its end had passed on Apple's clock (one ending at "now", or later)
-- is partial: Apple lists nothing signed after the moment of reading. Its
-- complete_until is that moment, so the watermark stops there and the next
-- sweep starts there (minus the overlap) instead of skipping the rest.
-- NULL while the window is unfinished.
ALTER TABLE backfill_windows ADD COLUMN complete_until timestamptz;
UPDATE backfill_windows SET complete_until = end_date WHERE finished_at IS NOT NULL;
