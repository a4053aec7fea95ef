//! Walking the log a page at a time up to a cut: the loop every reader of the whole log
//! needs (exports, state rebuilds, reprocessing, republishing, searches).

use crate::{EventFilter, EventStore, RecordedEvent, StoreError};

/// The events `filter` selects after a position and up to a cut, a page at a time. The cut
/// is fixed when the walk begins ([`Pages::to_head`]: the head then), so a walk of a log
/// that grows meanwhile ends, on a consistent cut.
#[derive(Debug)]
pub struct Pages<'a> {
    store: &'a dyn EventStore,
    filter: EventFilter,
    after: u64,
    until: u64,
    size: usize,
}

impl<'a> Pages<'a> {
    /// Every event `filter` selects, from the first up to the head as it is now, `size` at
    /// a time.
    pub async fn to_head(
        store: &'a dyn EventStore,
        filter: EventFilter,
        size: usize,
    ) -> Result<Self, StoreError> {
        let until = store.head().await?.position;
        Ok(Self::between(store, filter, (0, until), size))
    }

    /// The events `filter` selects at positions `after + 1 ..= until`, `size` at a time.
    pub fn between(
        store: &'a dyn EventStore,
        filter: EventFilter,
        (after, until): (u64, u64),
        size: usize,
    ) -> Self {
        Self {
            store,
            filter,
            after,
            until,
            size: size.max(1),
        }
    }

    /// The next page (never empty), or `None` at the cut.
    pub async fn next(&mut self) -> Result<Option<Vec<RecordedEvent>>, StoreError> {
        while self.after < self.until {
            let page = self
                .store
                .read_all(self.after, self.size, &self.filter)
                .await?;
            let Some(last) = page.last().map(|r| r.position) else {
                self.after = self.until;
                break;
            };
            self.after = last.min(self.until);
            let page: Vec<RecordedEvent> = page
                .into_iter()
                .take_while(|r| r.position <= self.until)
                .collect();
            if !page.is_empty() {
                return Ok(Some(page));
            }
        }
        Ok(None)
    }

    /// The position the walk has reached (the last page's last position, at most the cut).
    pub fn position(&self) -> u64 {
        self.after
    }

    /// The cut.
    pub fn until(&self) -> u64 {
        self.until
    }
}
