-- Recordings on their way into the recordings store (S3 or a local folder): one row per
-- recording the PBX made of a call (Asterisk: the MixMonitor file's name; Mango: the
-- recording_id), added when the call is stored with it and kept until it is stored — never
-- dropped. Whichever hub replica leases a due row first fetches and uploads it; a failure sets
-- the next try with backoff and keeps the reason for the UI. The store key is fixed when the row
-- is made, so a retry, another replica or a restarted hub writes the same object, never a
-- second one.
CREATE TABLE recordings (
    tenant_id     TEXT        NOT NULL REFERENCES tenants (id),
    pbx_call_id   TEXT        NOT NULL,
    name          TEXT        NOT NULL,
    store_key     TEXT        NOT NULL,
    state         TEXT        NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'stored', 'failed')),
    attempts      INTEGER     NOT NULL DEFAULT 0,
    next_try_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Set while a replica works on the row; its token proves the lease is still its own.
    leased_until  TIMESTAMPTZ,
    lease_token   UUID,
    last_error    TEXT,
    size_bytes    BIGINT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    stored_at     TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, pbx_call_id, name)
);

CREATE INDEX recordings_due ON recordings (next_try_at) WHERE state <> 'stored';
