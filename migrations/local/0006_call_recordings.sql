-- The call's recordings and where they are (the hub's `recording_states`: name, state, error),
-- as a JSON array, so the history can offer ▶ after a restart.
ALTER TABLE calls ADD COLUMN recordings TEXT NOT NULL DEFAULT '[]';
