-- Tenants (enterprises) and their calls. The hub issue extends this schema.
CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,                 -- slug, e.g. 'acme'
    name        TEXT NOT NULL,
    pbx_kind    TEXT NOT NULL CHECK (pbx_kind IN ('asterisk', 'mango', 'demo')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE calls (
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    pbx_call_id   TEXT NOT NULL,                  -- Asterisk Linkedid, Mango entry_id
    direction     TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound', 'internal')),
    from_raw      TEXT NOT NULL,
    from_e164     TEXT,
    to_raw        TEXT NOT NULL,
    to_e164       TEXT,
    status        TEXT CHECK (status IN ('answered', 'missed', 'no_answer', 'busy', 'failed', 'cancelled')),
    operator      TEXT,
    started_at    TIMESTAMPTZ NOT NULL,
    answered_at   TIMESTAMPTZ,
    ended_at      TIMESTAMPTZ,
    hangup_cause  SMALLINT,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, pbx_call_id)
);

CREATE INDEX calls_tenant_started ON calls (tenant_id, started_at DESC);
CREATE INDEX calls_tenant_from ON calls (tenant_id, from_e164);
