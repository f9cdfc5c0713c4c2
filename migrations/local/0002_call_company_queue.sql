-- What the pop showed about a call, kept in the history: the caller's company (from the hub's
-- caller card), the queue it came through and the extensions it rang (space-separated).
ALTER TABLE calls ADD COLUMN company TEXT;
ALTER TABLE calls ADD COLUMN queue TEXT;
ALTER TABLE calls ADD COLUMN rang TEXT NOT NULL DEFAULT '';
