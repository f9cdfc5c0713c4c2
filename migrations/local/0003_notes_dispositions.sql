-- After-call work kept on this desk (Direct and Demo profiles; with the hub it lives there):
-- notes (append-only, idempotent by the client-generated id) and one disposition per call.
CREATE TABLE notes (
    id          TEXT    NOT NULL PRIMARY KEY,   -- client-generated UUID
    call_id     TEXT    NOT NULL,
    text        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL                -- unix ms
) STRICT;

CREATE INDEX notes_call ON notes (call_id, created_at);

CREATE TABLE dispositions (
    call_id     TEXT    NOT NULL PRIMARY KEY,
    code        TEXT    NOT NULL,
    set_at      INTEGER NOT NULL                -- unix ms
) STRICT;
