-- The append-only event log, its head, and named checkpoints.

CREATE TABLE events (
    position         INTEGER PRIMARY KEY,
    event_id         BLOB    NOT NULL UNIQUE,
    stream_id        TEXT    NOT NULL,
    stream_version   INTEGER NOT NULL,
    event_type       TEXT    NOT NULL,
    schema_version   INTEGER NOT NULL,
    causation_id     TEXT,
    correlation_id   TEXT    NOT NULL,
    occurred_at      INTEGER NOT NULL,  -- microseconds since the epoch
    recorded_at      INTEGER NOT NULL,  -- microseconds since the epoch
    producer         TEXT    NOT NULL,
    producer_version TEXT    NOT NULL,
    payload          BLOB    NOT NULL,
    hash             BLOB    NOT NULL,  -- SHA-256(previous hash || canonical bytes)
    UNIQUE (stream_id, stream_version)
);

CREATE INDEX events_by_type ON events (event_type, position);

-- The last position and hash; appends update it inside BEGIN IMMEDIATE transactions.
CREATE TABLE store_head (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    position INTEGER NOT NULL,
    hash     BLOB    NOT NULL
);
INSERT INTO store_head (id, position, hash) VALUES (1, 0, zeroblob(32));

CREATE TABLE checkpoints (
    name       TEXT PRIMARY KEY,
    position   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Events are facts: the database refuses to change or remove them.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only: UPDATE refused');
END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only: DELETE refused');
END;
