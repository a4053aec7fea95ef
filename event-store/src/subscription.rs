//! Catch-up-then-live reading over any backend.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crate::types::{EventFilter, RecordedEvent, StoreError};
use crate::{EventStore, PAGE_SIZE};

/// Reads every event after a position, first from history in pages, then live as they
/// are appended. Memory is bounded by one page.
///
/// Waking is driven by [`EventStore::appended`] (in-process appends, and PostgreSQL
/// notifications from other processes); `poll_interval` bounds how late an append is
/// seen when no wake-up arrives (e.g. another process writing the same SQLite file).
#[derive(Debug)]
pub struct Subscription {
    store: Arc<dyn EventStore>,
    after: u64,
    filter: EventFilter,
    buffer: VecDeque<RecordedEvent>,
    page_size: usize,
    poll_interval: Duration,
}

impl Subscription {
    /// A subscription to events after position `after` that pass `filter`.
    pub fn new(store: Arc<dyn EventStore>, after: u64, filter: EventFilter) -> Self {
        Self {
            store,
            after,
            filter,
            buffer: VecDeque::new(),
            page_size: PAGE_SIZE,
            poll_interval: Duration::from_millis(500),
        }
    }

    /// Sets the page size (at least 1).
    pub fn with_page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// Sets the polling bound.
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The position of the last event returned (or the starting position).
    pub fn position(&self) -> u64 {
        self.after
    }

    /// The next event, waiting for one to be appended if the subscription has caught up.
    pub async fn next(&mut self) -> Result<RecordedEvent, StoreError> {
        loop {
            if let Some(e) = self.buffer.pop_front() {
                self.after = e.position;
                return Ok(e);
            }
            // Mark the current value seen before reading, so an append that lands between
            // the read and the wait still wakes us.
            let mut appended = self.store.appended();
            appended.borrow_and_update();
            let page = self
                .store
                .read_all(self.after, self.page_size, &self.filter)
                .await?;
            if page.is_empty() {
                let _ = tokio::time::timeout(self.poll_interval, appended.changed()).await;
                continue;
            }
            self.buffer.extend(page);
        }
    }

    /// The next event if one is available now, without waiting for new appends.
    pub async fn try_next(&mut self) -> Result<Option<RecordedEvent>, StoreError> {
        if self.buffer.is_empty() {
            let page = self
                .store
                .read_all(self.after, self.page_size, &self.filter)
                .await?;
            self.buffer.extend(page);
        }
        Ok(self.buffer.pop_front().inspect(|e| self.after = e.position))
    }
}

/// Events after `after` that pass `filter`, at most `limit`, and the position up to which
/// that answer is complete: every event that passes `filter` at or below it is among them.
///
/// A filtered reader that only learns the positions of its own events cannot tell how far
/// it has read (a read-your-writes wait on it would hang until its next own event). The
/// head is read first: every event at or below it is committed, and positions become
/// visible in order, so a read after it that is not full has seen all of them.
pub async fn read_covered(
    store: &dyn EventStore,
    after: u64,
    limit: usize,
    filter: &EventFilter,
) -> Result<(Vec<RecordedEvent>, u64), StoreError> {
    let head = store.head().await?.position;
    let events = store.read_all(after, limit, filter).await?;
    let covered = match events.last() {
        Some(last) if events.len() >= limit => last.position,
        Some(last) => last.position.max(head),
        None => head.max(after),
    };
    Ok((events, covered))
}
