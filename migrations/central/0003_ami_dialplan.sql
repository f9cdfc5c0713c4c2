-- How call controls map onto a tenant's Asterisk dialplan: channel technology (chan_sip or
-- chan_pjsip), the context originates and transfers dial through, and the prefix for
-- international numbers. NULL = the defaults (PJSIP, from-internal, numbers dialled as E.164).
ALTER TABLE tenants ADD COLUMN ami_dialplan JSONB;
