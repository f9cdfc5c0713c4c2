-- Hub replicas announce themselves here (a heartbeat every lease round), so a replica that is
-- alone skips LISTEN/NOTIFY fan-out it does not need.
CREATE TABLE hub_replicas (
    replica  TEXT PRIMARY KEY,
    seen_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
