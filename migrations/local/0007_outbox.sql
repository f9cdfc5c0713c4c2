-- Sync with the hub. Every change this desk makes that the hub must learn (a note, a
-- disposition, tags, a call heard over Direct AMI) gets an outbox row in the same transaction
-- as the change itself, with the desk's UUID for it; the sync worker pushes rows in `seq` order
-- and deletes them once the hub has them (the hub applies each id once, so a row pushed twice —
-- e.g. the app was killed before it heard the answer — changes nothing).
CREATE TABLE outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT    NOT NULL UNIQUE,          -- the desk's UUID for the change
    target      TEXT    NOT NULL,                 -- the hub and tenant it goes to
    kind        TEXT    NOT NULL CHECK (kind IN ('note', 'disposition', 'tags', 'call', 'callback')),
    call_id     TEXT    NOT NULL,                 -- the call (a worklist change: the number)
    body        TEXT    NOT NULL,                 -- the change as the hub reads it (JSON)
    created_at  INTEGER NOT NULL,                 -- unix ms
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    -- `refused`: the hub will never apply it (the reason is in last_error); kept to be shown,
    -- never sent again.
    state       TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'refused'))
) STRICT;

CREATE INDEX outbox_due ON outbox (target, state, seq);
CREATE INDEX outbox_call ON outbox (call_id, kind) WHERE state = 'pending';

-- Small per-hub facts: the pull cursor (`cursor:<target>`), the tenant's disposition list as
-- last read (`dispositions:<target>`).
CREATE TABLE sync_state (
    key    TEXT NOT NULL PRIMARY KEY,
    value  TEXT NOT NULL
) STRICT;

-- Notes pulled from the hub carry their author's login (this desk's own: none).
ALTER TABLE notes ADD COLUMN author TEXT;
