-- Tags on calls and this desk's missed-calls worklist (Direct and Demo profiles; with the hub
-- both live there). The worklist is derived from the calls as on the hub (see
-- calldesk-central's worklist.rs); `callbacks` keeps only the claim and the last closing.
CREATE TABLE tags (
    call_id  TEXT NOT NULL,
    tag      TEXT NOT NULL,
    PRIMARY KEY (call_id, tag)
) STRICT;

CREATE TABLE callbacks (
    number      TEXT    NOT NULL PRIMARY KEY,   -- E.164
    claimed_at  INTEGER,                        -- unix ms (this desk's clock)
    closed_at   INTEGER,
    outcome     TEXT CHECK (outcome IN ('reached', 'unreachable', 'not_needed'))
) STRICT;

-- When this desk stored the call (its own clock): what closing and claiming compare with.
ALTER TABLE calls ADD COLUMN recorded_at INTEGER;
CREATE INDEX calls_to_e164 ON calls (to_e164);
