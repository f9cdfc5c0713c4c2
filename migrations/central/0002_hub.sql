-- The hub (issue 5): tenant configuration and clientId digests, operators, the caller
-- directory (companies, contacts, phones), the call record and its history, notes and
-- dispositions, and the Mango webhook inbox. Every table is keyed by tenant; references
-- between tenant rows are composite `(tenant_id, id)` foreign keys, so a row can never point at
-- another tenant's row.

-- Tenants ----------------------------------------------------------------------------------------

-- Rows created before this migration (or by `upsert_tenant`) have no number ('' = not set) and
-- no clientId (NULL: no desktop can connect until one is issued by rotating it). The PBX
-- settings live in typed columns; secrets never do, only the names of the environment
-- variables that hold them.
ALTER TABLE tenants
    ADD COLUMN number               TEXT    NOT NULL DEFAULT '' CHECK (number ~ '^[0-9]{0,16}$'),
    ADD COLUMN region               TEXT    NOT NULL DEFAULT 'RU' CHECK (region ~ '^[A-Z]{2}$'),
    ADD COLUMN active               BOOLEAN NOT NULL DEFAULT true,
    ADD COLUMN client_secret_sha256 BYTEA   CHECK (octet_length(client_secret_sha256) = 32),
    ADD COLUMN ami_host             TEXT,
    ADD COLUMN ami_port             INTEGER CHECK (ami_port BETWEEN 1 AND 65535),
    ADD COLUMN ami_user             TEXT,
    ADD COLUMN ami_secret_env       TEXT,
    ADD COLUMN ami_tls              BOOLEAN,
    ADD COLUMN mango_api_url        TEXT,
    ADD COLUMN mango_key            TEXT,
    ADD COLUMN mango_salt_env       TEXT;

-- Defaults for existing rows (the same as `PbxConfig::default_for` in calldesk-central).
UPDATE tenants SET ami_host = '127.0.0.1', ami_port = 5038, ami_user = 'calldesk',
    ami_secret_env = 'CALLDESK_AMI_SECRET', ami_tls = false
    WHERE pbx_kind = 'asterisk';
UPDATE tenants SET mango_key = '', mango_salt_env = 'MANGO_API_SALT' WHERE pbx_kind = 'mango';

-- `pbx_kind` and the PBX columns agree: the columns of the kind are set, the others are not.
ALTER TABLE tenants ADD CONSTRAINT tenants_pbx_config CHECK (
    CASE pbx_kind
        WHEN 'asterisk' THEN ami_host IS NOT NULL AND ami_port IS NOT NULL AND ami_user IS NOT NULL
            AND ami_secret_env IS NOT NULL AND ami_tls IS NOT NULL
            AND mango_api_url IS NULL AND mango_key IS NULL AND mango_salt_env IS NULL
        WHEN 'mango' THEN mango_key IS NOT NULL AND mango_salt_env IS NOT NULL
            AND ami_host IS NULL AND ami_port IS NULL AND ami_user IS NULL
            AND ami_secret_env IS NULL AND ami_tls IS NULL
        ELSE ami_host IS NULL AND ami_port IS NULL AND ami_user IS NULL AND ami_secret_env IS NULL
            AND ami_tls IS NULL AND mango_api_url IS NULL AND mango_key IS NULL
            AND mango_salt_env IS NULL
    END
);

CREATE UNIQUE INDEX tenants_number_key ON tenants (number) WHERE number <> '';
CREATE UNIQUE INDEX tenants_client_secret_key ON tenants (client_secret_sha256);

-- Operators --------------------------------------------------------------------------------------

CREATE TABLE operators (
    id             BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id      TEXT    NOT NULL REFERENCES tenants (id),
    login          TEXT    NOT NULL CHECK (login ~ '^[A-Za-z0-9._@-]{1,64}$'),
    name           TEXT,
    password_hash  TEXT    NOT NULL CHECK (password_hash <> ''),
    role           TEXT    NOT NULL CHECK (role IN ('operator', 'supervisor', 'admin')),
    extension      TEXT    NOT NULL,
    sip            TEXT,
    active         BOOLEAN NOT NULL DEFAULT true,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT operators_tenant_id_key UNIQUE (tenant_id, id),
    CONSTRAINT operators_extension_key UNIQUE (tenant_id, extension),
    -- NULLs are distinct: many operators may have no SIP address.
    CONSTRAINT operators_sip_key UNIQUE (tenant_id, sip)
);
-- Logins are case-insensitive: `Anna` and `anna` are one operator.
CREATE UNIQUE INDEX operators_login_key ON operators (tenant_id, lower(login));

-- Caller directory ------------------------------------------------------------------------------

CREATE TABLE companies (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   TEXT   NOT NULL REFERENCES tenants (id),
    name        TEXT   NOT NULL CHECK (btrim(name) <> ''),
    note        TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT companies_tenant_id_key UNIQUE (tenant_id, id)
);
CREATE INDEX companies_tenant_name ON companies (tenant_id, lower(name), id);

CREATE TABLE contacts (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   TEXT   NOT NULL REFERENCES tenants (id),
    company_id  BIGINT,
    name        TEXT   NOT NULL CHECK (btrim(name) <> ''),
    position    TEXT,
    email       TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT contacts_tenant_id_key UNIQUE (tenant_id, id),
    -- A contact's company is in the same tenant. Deleting a company first unlinks its
    -- contacts (in the same transaction): they keep living without it.
    CONSTRAINT contacts_company_fkey FOREIGN KEY (tenant_id, company_id)
        REFERENCES companies (tenant_id, id)
);
CREATE INDEX contacts_tenant_name ON contacts (tenant_id, lower(name), id);
CREATE INDEX contacts_tenant_company ON contacts (tenant_id, company_id)
    WHERE company_id IS NOT NULL;

-- A phone belongs to exactly one contact or one company; `ord` keeps the order they were given.
-- The same number may belong to several owners (a shared office line): `identify` prefers a
-- contact, then the lowest id.
CREATE TABLE phones (
    tenant_id   TEXT    NOT NULL,
    e164        TEXT    NOT NULL CHECK (e164 ~ '^\+[0-9]{8,15}$'),
    contact_id  BIGINT,
    company_id  BIGINT,
    ord         INTEGER NOT NULL,
    CHECK ((contact_id IS NULL) <> (company_id IS NULL)),
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, company_id) REFERENCES companies (tenant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX phones_contact_key ON phones (tenant_id, contact_id, e164)
    WHERE contact_id IS NOT NULL;
CREATE UNIQUE INDEX phones_company_key ON phones (tenant_id, company_id, e164)
    WHERE company_id IS NOT NULL;
CREATE INDEX phones_lookup ON phones (tenant_id, e164);

-- Calls ------------------------------------------------------------------------------------------

-- `record` is the hub's `HubCall` without notes and disposition (those have their own tables);
-- the columns beside it are derived from it for filtering. Existing rows get a record built
-- from their columns, so every row reads back as a `HubCall`.
ALTER TABLE calls
    ADD COLUMN record             JSONB,
    ADD COLUMN live               BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN caller_contact_id  BIGINT,
    ADD COLUMN caller_company_id  BIGINT;

UPDATE calls SET
    live = ended_at IS NULL,
    record = jsonb_build_object(
        'id', pbx_call_id,
        'direction', direction,
        'from', coalesce(from_e164, from_raw),
        'to', to_raw,
        'status', status,
        'answered_by', CASE WHEN answered_at IS NOT NULL AND operator IS NOT NULL
                            THEN jsonb_build_array(operator) ELSE '[]'::jsonb END,
        'transfers', '[]'::jsonb,
        'monitors', '[]'::jsonb,
        'queue', NULL,
        'ring_secs', CASE WHEN ended_at IS NOT NULL THEN floor(extract(epoch FROM
                         coalesce(answered_at, ended_at) - started_at))::bigint END,
        'talk_secs', CASE WHEN answered_at IS NOT NULL AND ended_at IS NOT NULL THEN
                         floor(extract(epoch FROM ended_at - answered_at))::bigint END,
        'hangup_cause', CASE WHEN hangup_cause IS NOT NULL THEN
                            jsonb_build_object('code', hangup_cause, 'text', '') END,
        'recordings', '[]'::jsonb,
        'started_at', to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'answered_at', to_char(answered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'ended_at', to_char(ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'tenant', tenant_id,
        'state', CASE WHEN ended_at IS NOT NULL THEN 'ended'
                      WHEN answered_at IS NOT NULL THEN 'talking' ELSE 'ringing' END,
        'operator', operator,
        'rang', '[]'::jsonb,
        'on_hold', false,
        'caller', NULL,
        'notes', '[]'::jsonb,
        'disposition', NULL
    );

ALTER TABLE calls ALTER COLUMN record SET NOT NULL;

-- The list query (newest first, keyset over (started_at, pbx_call_id)) and its filters. These
-- replace 0001's two indexes, which are prefixes of them.
DROP INDEX calls_tenant_started;
DROP INDEX calls_tenant_from;
CREATE INDEX calls_tenant_started_id ON calls (tenant_id, started_at DESC, pbx_call_id DESC);
CREATE INDEX calls_tenant_operator ON calls (tenant_id, operator, started_at DESC);
CREATE INDEX calls_tenant_from ON calls (tenant_id, from_e164, started_at DESC);
CREATE INDEX calls_tenant_to ON calls (tenant_id, to_raw, started_at DESC);
CREATE INDEX calls_tenant_company ON calls (tenant_id, caller_company_id, started_at DESC)
    WHERE caller_company_id IS NOT NULL;
CREATE INDEX calls_tenant_contact ON calls (tenant_id, caller_contact_id, started_at DESC)
    WHERE caller_contact_id IS NOT NULL;
CREATE INDEX calls_live ON calls (tenant_id, started_at) WHERE live;

-- Every state of a call the hub saw, in order (`seq`). Appended, never updated; not tied to
-- `calls` by a foreign key so the hub may write it before or after the call's upsert.
CREATE TABLE call_events (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    TEXT   NOT NULL REFERENCES tenants (id),
    pbx_call_id  TEXT   NOT NULL,
    kind         TEXT   NOT NULL CHECK (kind IN ('new', 'updated', 'ended')),
    at_ms        BIGINT NOT NULL,
    data         JSONB  NOT NULL
);
CREATE INDEX call_events_call ON call_events (tenant_id, pbx_call_id, seq);

-- Notes and dispositions -------------------------------------------------------------------------

CREATE TABLE call_notes (
    tenant_id    TEXT   NOT NULL,
    id           UUID   NOT NULL,                 -- generated by the client: re-sending is a no-op
    pbx_call_id  TEXT   NOT NULL,
    author_id    BIGINT,
    text         TEXT   NOT NULL CHECK (char_length(text) BETWEEN 1 AND 4000),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT call_notes_call_fkey FOREIGN KEY (tenant_id, pbx_call_id)
        REFERENCES calls (tenant_id, pbx_call_id) ON DELETE CASCADE,
    CONSTRAINT call_notes_author_fkey FOREIGN KEY (tenant_id, author_id)
        REFERENCES operators (tenant_id, id)
);
CREATE INDEX call_notes_call ON call_notes (tenant_id, pbx_call_id, created_at);

CREATE TABLE call_dispositions (
    tenant_id    TEXT   NOT NULL,
    pbx_call_id  TEXT   NOT NULL,
    code         TEXT   NOT NULL CHECK (code ~ '^[a-z0-9_-]{1,64}$'),
    set_by       BIGINT,
    set_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, pbx_call_id),
    CONSTRAINT call_dispositions_call_fkey FOREIGN KEY (tenant_id, pbx_call_id)
        REFERENCES calls (tenant_id, pbx_call_id) ON DELETE CASCADE,
    CONSTRAINT call_dispositions_set_by_fkey FOREIGN KEY (tenant_id, set_by)
        REFERENCES operators (tenant_id, id)
);

-- Mango webhook inbox ----------------------------------------------------------------------------

-- Persisted before the hub answers 200, replayed by the replica that takes a tenant over.
-- `digest` = sha256 of the path's length (8 bytes, little endian), the path and the body: a
-- webhook delivered twice is stored once.
CREATE TABLE webhook_inbox (
    id           BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    TEXT    NOT NULL REFERENCES tenants (id),
    path         TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    digest       BYTEA   NOT NULL CHECK (octet_length(digest) = 32),
    received_at  TIMESTAMPTZ NOT NULL,
    processed    BOOLEAN NOT NULL DEFAULT false,
    CONSTRAINT webhook_inbox_digest_key UNIQUE (tenant_id, digest)
);
CREATE INDEX webhook_inbox_tenant ON webhook_inbox (tenant_id, id);
CREATE INDEX webhook_inbox_unprocessed ON webhook_inbox (tenant_id, id) WHERE NOT processed;
