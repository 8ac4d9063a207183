-- Revoking a token revokes every lease it created: found through this
-- index, not a scan of every lease.
CREATE INDEX leases_token ON leases (token_accessor) WHERE token_accessor IS NOT NULL;
