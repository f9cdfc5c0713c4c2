-- Desk sync (offline history): the changes desks pushed, applied once each, and the change feed
-- desks pull.

-- Every change a desk pushed and the hub applied, by the desk's UUID for it: a change (or a
-- whole batch) sent again is recognised and changes nothing.
CREATE TABLE sync_applied (
    tenant_id    TEXT        NOT NULL REFERENCES tenants (id),
    change_id    UUID        NOT NULL,
    operator_id  BIGINT,
    applied_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, change_id)
);
CREATE INDEX sync_applied_at ON sync_applied (applied_at);

-- A call a desk reported (Direct AMI profile): kept until the hub hears the call from the PBX
-- itself, whose states then replace it (the PBX side owns calls), ended or not.
ALTER TABLE calls ADD COLUMN reported BOOLEAN NOT NULL DEFAULT false;

-- The change feed: one row per call whose history or after-call work a transaction changed
-- (an ended call stored, a note, a disposition, tags, a recording's state), written by the
-- triggers below in that same transaction. Rows are read in the order (xid, seq) and only
-- below the oldest transaction still running (`pg_snapshot_xmin`), so a reader never passes a
-- row that commits later: the cursor `xid.seq` is exact.
CREATE TABLE sync_feed (
    tenant_id    TEXT        NOT NULL,
    xid          xid8        NOT NULL DEFAULT pg_current_xact_id(),
    seq          BIGINT      GENERATED ALWAYS AS IDENTITY,
    pbx_call_id  TEXT        NOT NULL,
    at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, xid, seq)
);
CREATE INDEX sync_feed_at ON sync_feed (tenant_id, at);

-- The calls of the rows a statement changed (transition table `changed`).
CREATE FUNCTION sync_feed_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sync_feed (tenant_id, pbx_call_id)
    SELECT DISTINCT tenant_id, pbx_call_id FROM changed;
    RETURN NULL;
END $$;

-- Calls: only ended ones (live calls reach desks over the WebSocket).
CREATE FUNCTION sync_feed_calls() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sync_feed (tenant_id, pbx_call_id)
    SELECT DISTINCT tenant_id, pbx_call_id FROM changed WHERE NOT live;
    RETURN NULL;
END $$;

-- Recordings: only a new state or reason (lease renewals are not news).
CREATE FUNCTION sync_feed_recordings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sync_feed (tenant_id, pbx_call_id)
    SELECT DISTINCT n.tenant_id, n.pbx_call_id
    FROM changed n JOIN before o USING (tenant_id, pbx_call_id, name)
    WHERE n.state IS DISTINCT FROM o.state OR n.last_error IS DISTINCT FROM o.last_error;
    RETURN NULL;
END $$;

CREATE TRIGGER calls_feed_insert AFTER INSERT ON calls
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION sync_feed_calls();
CREATE TRIGGER calls_feed_update AFTER UPDATE ON calls
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION sync_feed_calls();
CREATE TRIGGER notes_feed_insert AFTER INSERT ON call_notes
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION sync_feed_rows();
CREATE TRIGGER dispositions_feed_insert AFTER INSERT ON call_dispositions
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION sync_feed_rows();
CREATE TRIGGER dispositions_feed_update AFTER UPDATE ON call_dispositions
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION sync_feed_rows();
CREATE TRIGGER tags_feed_insert AFTER INSERT ON call_tags
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION sync_feed_rows();
CREATE TRIGGER tags_feed_delete AFTER DELETE ON call_tags
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION sync_feed_rows();
CREATE TRIGGER recordings_feed_update AFTER UPDATE ON recordings
    REFERENCING NEW TABLE AS changed OLD TABLE AS before
    FOR EACH STATEMENT EXECUTE FUNCTION sync_feed_recordings();
