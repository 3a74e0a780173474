-- Input retention: the images attached to a turn's request are deleted once the turn is over
-- and INPUT_RETENTION_DAYS have passed (or at once when it is 0); `inputs_pruned` remembers that
-- a turn had some, so a reroll of it says they are gone instead of running without them.
ALTER TABLE turns ADD COLUMN inputs_pruned INTEGER NOT NULL DEFAULT 0;
