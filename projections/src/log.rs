//! The log as the views read it: pages of decoded events, read from the store and decoded
//! once for every view of a process ([`SharedLog`]) rather than once per view.

use std::collections::VecDeque;
use std::sync::Arc;

use insights_event_store::envelope::from_recorded;
use insights_event_store::{EventFilter, EventStore, RecordedEvent, StoreError};
use insights_schemas::Envelope;
use tokio::sync::Mutex;

/// A stored event as a view gets it.
#[derive(Debug)]
pub struct Decoded {
    /// Its position in the log.
    pub position: u64,
    /// When the store took it, microseconds since the epoch.
    pub recorded_at: i64,
    /// Its type, as stored.
    pub event_type: String,
    /// The event, or why it does not decode.
    pub envelope: Result<Envelope, String>,
}

impl Decoded {
    fn new(r: &RecordedEvent) -> Self {
        Decoded {
            position: r.position,
            recorded_at: r.recorded_at,
            event_type: r.data.event_type.clone(),
            envelope: from_recorded(r).map_err(|e| e.to_string()),
        }
    }
}

/// A page of a view's events: at most the page size, after a position and up to a cut.
#[derive(Debug, Default)]
pub struct Page {
    /// The events the view takes, in order.
    pub events: Vec<Arc<Decoded>>,
    /// The position the page covers: its last event's when the page is full, else the cut
    /// (a view's checkpoint moves there even when none of the events was its own).
    pub covered: u64,
}

/// The most recent stretch of the log, decoded, shared by every view runner of a process.
///
/// Views follow the head together, and each asking the store for its own event types
/// meant the same rows read and decoded once per view (six times over: in production the
/// views' process and PostgreSQL's reads for it were a quarter of the pipeline's CPU). The
/// first runner to need a stretch reads every event of it once and decodes it; the others
/// find it here and take their types. A runner behind the kept stretch (a rebuild, a view
/// that fell far behind) reads the store directly, so one slow view cannot make the others
/// read again.
#[derive(Debug)]
pub struct SharedLog {
    store: Arc<dyn EventStore>,
    window: Mutex<Window>,
    /// Events read from the store at a time.
    read: usize,
    /// Events kept.
    keep: usize,
}

/// Events at positions `first .. first + events.len()` (the log's positions have no gaps).
#[derive(Debug, Default)]
struct Window {
    first: u64,
    events: VecDeque<Arc<Decoded>>,
}

impl Window {
    /// The position after the last one held.
    fn end(&self) -> u64 {
        self.first + self.events.len() as u64
    }
}

impl SharedLog {
    /// A shared reader of `store`, reading `read` events at a time and keeping up to
    /// `keep` of the most recent.
    pub fn new(store: Arc<dyn EventStore>, read: usize, keep: usize) -> Self {
        SharedLog {
            store,
            window: Mutex::new(Window::default()),
            read: read.max(1),
            keep: keep.max(read),
        }
    }

    /// The events `filter` selects at positions `after + 1 ..= until`, at most `limit`.
    pub async fn page(
        &self,
        after: u64,
        until: u64,
        limit: usize,
        filter: &EventFilter,
    ) -> Result<Page, StoreError> {
        let limit = limit.max(1);
        let mut page = Page::default();
        let mut at = after;
        while at < until {
            let mut window = self.window.lock().await;
            if at + 1 < window.first {
                drop(window);
                return direct(&*self.store, at, until, limit, filter, page).await;
            }
            if at + 1 >= window.end() {
                if at + 1 > window.end() || window.events.is_empty() {
                    // Nothing held is of use: start the stretch here.
                    *window = Window {
                        first: at + 1,
                        events: VecDeque::new(),
                    };
                }
                let read = self
                    .store
                    .read_all(window.end() - 1, self.read, &EventFilter::All)
                    .await?;
                if read.is_empty() {
                    break;
                }
                for r in &read {
                    window.events.push_back(Arc::new(Decoded::new(r)));
                }
                while window.events.len() > self.keep && window.first < at + 1 {
                    window.events.pop_front();
                    window.first += 1;
                }
            }
            let from = (at + 1 - window.first) as usize;
            for e in window.events.iter().skip(from) {
                if e.position > until {
                    break;
                }
                at = e.position;
                if filter.accepts(&e.event_type) {
                    page.events.push(Arc::clone(e));
                    if page.events.len() == limit {
                        page.covered = at;
                        return Ok(page);
                    }
                }
            }
        }
        page.covered = until;
        Ok(page)
    }
}

/// [`SharedLog::page`] straight from the store, for a reader behind the kept stretch;
/// `page` holds what was already found.
async fn direct(
    store: &dyn EventStore,
    after: u64,
    until: u64,
    limit: usize,
    filter: &EventFilter,
    mut page: Page,
) -> Result<Page, StoreError> {
    let want = limit - page.events.len();
    let read = store.read_all(after, want, filter).await?;
    // A full read that ends within the cut may stop short of more of the view's events;
    // otherwise there are none up to the cut.
    page.covered = match read.last() {
        Some(last) if read.len() == want && last.position <= until => last.position,
        _ => until,
    };
    for r in read.iter().take_while(|r| r.position <= until) {
        page.events.push(Arc::new(Decoded::new(r)));
    }
    Ok(page)
}

/// One view's reading of the log: through the process's shared reader, or (rebuilds,
/// one-off runners) straight from the store.
pub(crate) async fn page(
    shared: Option<&SharedLog>,
    store: &dyn EventStore,
    (after, until): (u64, u64),
    limit: usize,
    filter: &EventFilter,
) -> Result<Page, StoreError> {
    match shared {
        Some(log) => log.page(after, until, limit, filter).await,
        None => direct(store, after, until, limit, filter, Page::default()).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use insights_event_store::{AppendBatch, EventData};

    fn event(n: u32, event_type: &str) -> EventData {
        EventData {
            event_id: uuid::Uuid::from_u128(u128::from(n) + 1),
            stream_id: format!("s{n}"),
            event_type: event_type.into(),
            schema_version: 1,
            causation_id: None,
            correlation_id: format!("c{n}"),
            occurred_at: 1_000 + i64::from(n),
            producer: "test".into(),
            producer_version: "0".into(),
            // Not Avro: every event is undecodable, which the reader must pass on too.
            payload: vec![n as u8],
        }
    }

    async fn store_with(types: &[&str]) -> Arc<dyn EventStore> {
        let store = insights_event_store::open("sqlite::memory:", 1)
            .await
            .expect("opens");
        let batch: Vec<EventData> = types
            .iter()
            .enumerate()
            .map(|(n, t)| event(n as u32, t))
            .collect();
        store
            .append(AppendBatch::new(batch))
            .await
            .expect("appends");
        store
    }

    /// Every page the shared reader gives equals the one a view's own reading gives, for
    /// any mix of positions, cuts, page sizes and filters, and whatever the others read
    /// before.
    #[tokio::test]
    async fn shared_pages_equal_a_views_own_reading() {
        let types = ["A", "B", "A", "C", "B", "B", "A", "C", "C", "A", "B", "A"];
        let store = store_with(&types).await;
        let head = types.len() as u64;
        let filters = [
            EventFilter::All,
            EventFilter::Types(vec!["A".into()]),
            EventFilter::Types(vec!["B".into(), "C".into()]),
            EventFilter::Types(vec!["D".into()]),
        ];
        for (read, keep) in [(1, 1), (2, 3), (5, 5), (4, 100)] {
            let shared = SharedLog::new(Arc::clone(&store), read, keep);
            for after in 0..=head {
                for until in after..=head {
                    for limit in [1, 2, 3, 20] {
                        for filter in &filters {
                            let own = direct(&*store, after, until, limit, filter, Page::default())
                                .await
                                .expect("reads");
                            let got = shared
                                .page(after, until, limit, filter)
                                .await
                                .expect("reads");
                            let positions =
                                |p: &Page| p.events.iter().map(|e| e.position).collect::<Vec<_>>();
                            let case = format!(
                                "read {read} keep {keep} after {after} until {until} limit {limit} {filter:?}"
                            );
                            assert_eq!(positions(&got), positions(&own), "{case}");
                            assert_eq!(got.covered, own.covered, "{case}");
                        }
                    }
                }
            }
        }
    }
}
