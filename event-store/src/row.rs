//! Reading stored rows back, the same way for both backends.

use sqlx::{ColumnIndex, Decode, Row, Type};
use uuid::Uuid;

use crate::plan::{to_hash, to_u64};
use crate::types::{EventData, Head, RecordedEvent, StoreError};

/// The columns [`record_from_row`] reads, in a SELECT list.
pub(crate) const COLUMNS: &str = "position, event_id, stream_id, stream_version, event_type, schema_version, \
     causation_id, correlation_id, occurred_at, recorded_at, producer, producer_version, payload, hash";

/// Builds a [`RecordedEvent`] from a row selected with [`COLUMNS`].
pub(crate) fn record_from_row<'r, R>(row: &'r R) -> Result<RecordedEvent, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    i32: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    Uuid: Decode<'r, R::Database> + Type<R::Database>,
{
    let position: i64 = row.try_get("position")?;
    let hash: Vec<u8> = row.try_get("hash")?;
    Ok(RecordedEvent {
        position: to_u64(position, position, "position")?,
        stream_version: to_u64(row.try_get("stream_version")?, position, "stream version")?,
        recorded_at: row.try_get("recorded_at")?,
        hash: to_hash(&hash, position)?,
        data: EventData {
            event_id: row.try_get("event_id")?,
            stream_id: row.try_get("stream_id")?,
            event_type: row.try_get("event_type")?,
            schema_version: row.try_get("schema_version")?,
            causation_id: row.try_get("causation_id")?,
            correlation_id: row.try_get("correlation_id")?,
            occurred_at: row.try_get("occurred_at")?,
            producer: row.try_get("producer")?,
            producer_version: row.try_get("producer_version")?,
            payload: row.try_get("payload")?,
        },
    })
}

/// Builds the [`Head`] from a `SELECT position, hash FROM store_head` row.
pub(crate) fn head_from_row<'r, R>(row: &'r R) -> Result<Head, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    &'r [u8]: Decode<'r, R::Database> + Type<R::Database>,
{
    let position: i64 = row.try_get("position")?;
    Ok(Head {
        position: to_u64(position, position, "head position")?,
        hash: to_hash(row.try_get::<&[u8], _>("hash")?, position)?,
    })
}

/// Selects the head row.
pub(crate) const HEAD_SQL: &str = "SELECT position, hash FROM store_head WHERE id = 1";
