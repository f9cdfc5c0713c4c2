-- Finished calls as the operator saw them (the desktop's call history).
CREATE TABLE calls (
    id            TEXT    NOT NULL PRIMARY KEY,   -- PBX call id (Asterisk Linkedid, Mango entry_id)
    direction     TEXT    NOT NULL CHECK (direction IN ('inbound', 'outbound', 'internal')),
    from_raw      TEXT    NOT NULL,
    from_e164     TEXT,
    from_display  TEXT    NOT NULL,
    from_name     TEXT,
    to_raw        TEXT    NOT NULL,
    to_e164       TEXT,
    to_display    TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('answered', 'missed', 'no_answer', 'busy', 'failed', 'cancelled')),
    operator      TEXT,
    started_at    INTEGER NOT NULL,               -- unix ms
    answered_at   INTEGER,
    ended_at      INTEGER NOT NULL,
    ring_seconds  INTEGER,
    talk_seconds  INTEGER,
    hangup_cause  TEXT
) STRICT;

CREATE INDEX calls_ended_at ON calls (ended_at DESC);
CREATE INDEX calls_from_e164 ON calls (from_e164);
