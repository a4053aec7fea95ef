-- The append-only event log, its head, and named checkpoints.

CREATE TABLE events (
    position         BIGINT PRIMARY KEY,
    event_id         UUID   NOT NULL UNIQUE,
    stream_id        TEXT   NOT NULL,
    stream_version   BIGINT NOT NULL,
    event_type       TEXT   NOT NULL,
    schema_version   INTEGER NOT NULL,
    causation_id     TEXT,
    correlation_id   TEXT   NOT NULL,
    occurred_at      BIGINT NOT NULL,  -- microseconds since the epoch
    recorded_at      BIGINT NOT NULL,  -- microseconds since the epoch
    producer         TEXT   NOT NULL,
    producer_version TEXT   NOT NULL,
    payload          BYTEA  NOT NULL,
    hash             BYTEA  NOT NULL,  -- SHA-256(previous hash || canonical bytes)
    UNIQUE (stream_id, stream_version)
);

CREATE INDEX events_by_type ON events (event_type, position);

-- The last position and hash. Appends lock this row, which serialises writers and makes
-- positions gapless: a rolled-back append never took a position.
CREATE TABLE store_head (
    id       SMALLINT PRIMARY KEY CHECK (id = 1),
    position BIGINT NOT NULL,
    hash     BYTEA  NOT NULL
);
INSERT INTO store_head (id, position, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

CREATE TABLE checkpoints (
    name       TEXT PRIMARY KEY,
    position   BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Events are facts: the database refuses to change or remove them.
CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % refused', TG_OP;
END
$$;
CREATE TRIGGER events_no_change BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();
