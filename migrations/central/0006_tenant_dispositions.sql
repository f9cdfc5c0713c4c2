-- A tenant's disposition list (desktop issue): the codes operators choose from after a call, in
-- the order shown. NULL: the built-in list (`calldesk_wire::DEFAULT_DISPOSITIONS`). Codes are
-- checked by `calldesk_wire::disposition_list` before they are stored (a-z, 0-9, '_', '-';
-- 1 to 30 codes, no duplicates); a call keeps a code even after it leaves the list.
ALTER TABLE tenants ADD COLUMN dispositions TEXT[]
    CHECK (dispositions IS NULL OR cardinality(dispositions) BETWEEN 1 AND 30);
