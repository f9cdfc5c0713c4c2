-- The contacts cache: the hub's directory (contacts with their company and E.164 phones), kept
-- on the desk so callers are named — in the history, the pop of a Direct desk — with the hub
-- away. Replaced whole by each refresh (a contact deleted on the hub goes too).
CREATE TABLE contacts (
    id       INTEGER NOT NULL PRIMARY KEY,      -- the hub's contact id
    name     TEXT    NOT NULL,
    company  TEXT
) STRICT;

CREATE TABLE contact_phones (
    e164        TEXT    NOT NULL,
    contact_id  INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    PRIMARY KEY (e164, contact_id)
) STRICT;
