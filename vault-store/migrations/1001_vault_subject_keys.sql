-- The vault's subject keys: one row per (tenant, subject); `wrapped` is the subject's data
-- key wrapped under the key-encryption key (hex: 12-byte nonce, then the ciphertext), NULL
-- once erased. Versions of this store start at 1001 so they never meet the event store's
-- (0001…) in the shared _sqlx_migrations table. `IF NOT EXISTS`: databases made before
-- this table was migrated already have it.
CREATE TABLE IF NOT EXISTS vault_subject_keys (
    tenant TEXT NOT NULL,
    subject TEXT NOT NULL,
    wrapped TEXT,
    created_at BIGINT NOT NULL,
    erased_at BIGINT,
    PRIMARY KEY (tenant, subject)
);
