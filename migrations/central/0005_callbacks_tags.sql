-- Tags on calls and the missed-calls worklist (desktop issue).

-- A call's tags: normalised by `calldesk_wire::normalize_tags` (lowercase letters, digits, `-`,
-- `_`; at most 10 per call, enforced by the store, which replaces the whole set at once).
CREATE TABLE call_tags (
    tenant_id    TEXT NOT NULL,
    pbx_call_id  TEXT NOT NULL,
    tag          TEXT NOT NULL CHECK (char_length(tag) BETWEEN 1 AND 32 AND tag = lower(tag)),
    PRIMARY KEY (tenant_id, pbx_call_id, tag),
    CONSTRAINT call_tags_call_fkey FOREIGN KEY (tenant_id, pbx_call_id)
        REFERENCES calls (tenant_id, pbx_call_id) ON DELETE CASCADE
);
CREATE INDEX call_tags_tag ON call_tags (tenant_id, tag);

-- The worklist is derived from the calls: a caller is on it while they have unanswered inbound
-- calls (missed, busy) since the item was last closed and no answered call with their number
-- came after those. This table only keeps who took an item and when it was last closed; a new
-- missed call after `closed_at` opens it again (unclaimed).
CREATE TABLE callbacks (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    number       TEXT NOT NULL CHECK (number ~ '^\+[0-9]{8,15}$'),
    claimed_by   BIGINT,
    claimed_at   TIMESTAMPTZ,
    closed_at    TIMESTAMPTZ,
    closed_by    BIGINT,
    outcome      TEXT CHECK (outcome IN ('reached', 'unreachable', 'not_needed')),
    PRIMARY KEY (tenant_id, number),
    CHECK ((claimed_by IS NULL) = (claimed_at IS NULL)),
    CONSTRAINT callbacks_claimed_by_fkey FOREIGN KEY (tenant_id, claimed_by)
        REFERENCES operators (tenant_id, id),
    CONSTRAINT callbacks_closed_by_fkey FOREIGN KEY (tenant_id, closed_by)
        REFERENCES operators (tenant_id, id)
);

-- "Was the caller reached later?" looks for answered calls to the number as well as from it.
CREATE INDEX calls_tenant_to_e164 ON calls (tenant_id, to_e164, started_at DESC);
-- The worklist scans a tenant's recent unanswered inbound calls.
CREATE INDEX calls_tenant_unanswered ON calls (tenant_id, started_at DESC)
    WHERE direction = 'inbound' AND status IN ('missed', 'busy');
