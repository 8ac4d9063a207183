-- Sealed entries: configuration, roles, mounts, the keyring. Values are
-- AES-256-GCM ciphertexts bound to their key; the keyring is KMS-wrapped.
CREATE TABLE entries (
    key   TEXT PRIMARY KEY NOT NULL,
    value BYTEA NOT NULL
);

-- Leases live here, not in memory. The worker finds due leases through
-- the partial index on next_attempt_at, so start-up and memory do not grow
-- with the number of leases.
CREATE TABLE leases (
    id              TEXT PRIMARY KEY NOT NULL,
    state           TEXT NOT NULL,
    issued_at       BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    max_expires_at  BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    token_accessor  TEXT,
    sealed          BYTEA NOT NULL
);

CREATE INDEX leases_due ON leases (next_attempt_at) WHERE state <> 'irrevocable';
