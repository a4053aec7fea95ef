//! Feeding a view the log: catch-up and live following with the checkpoint in the view's
//! transaction, rebuild into fresh tables and the atomic swap, the outbox, lag.

use std::sync::Arc;
use std::time::Duration;

use insights_event_store::envelope::to_event_data;
use insights_event_store::{AppendBatch, EventFilter, EventStore};
use insights_schemas::Envelope;
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use serde::Serialize;
use sqlx::AnyConnection;
use sqlx::Row;
use tokio::sync::watch;

use crate::db::{Db, claim_checkpoint, save_checkpoint, to_i64};
use crate::log::{Decoded, SharedLog};
use crate::{Projection, ProjectionError, Recorded, ViewTx};

/// The suffix of the tables a rebuild fills.
const NEXT: &str = "__next";

/// Gauges and counters per view.
#[derive(Debug, Clone)]
pub struct RunnerMetrics {
    position: IntGaugeVec,
    lag: IntGaugeVec,
    applied: IntCounterVec,
    skipped: IntCounterVec,
}

impl RunnerMetrics {
    /// Registers the projection metrics in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let position = IntGaugeVec::new(
            Opts::new(
                "insights_projection_position",
                "The store position a view reflects",
            ),
            &["view"],
        )?;
        let lag = IntGaugeVec::new(
            Opts::new(
                "insights_projection_lag_events",
                "Events in the store that a view has not applied yet",
            ),
            &["view"],
        )?;
        let applied = IntCounterVec::new(
            Opts::new(
                "insights_projection_events_total",
                "Events a view has applied",
            ),
            &["view"],
        )?;
        let skipped = IntCounterVec::new(
            Opts::new(
                "insights_projection_skipped_total",
                "Stored events a view could not decode and skipped",
            ),
            &["view"],
        )?;
        registry.register(Box::new(position.clone()))?;
        registry.register(Box::new(lag.clone()))?;
        registry.register(Box::new(applied.clone()))?;
        registry.register(Box::new(skipped.clone()))?;
        Ok(RunnerMetrics {
            position,
            lag,
            applied,
            skipped,
        })
    }
}

/// Runs one view.
#[derive(Debug)]
pub struct Runner {
    db: Db,
    store: Arc<dyn EventStore>,
    view: Arc<dyn Projection>,
    filter: EventFilter,
    page: usize,
    emit: bool,
    metrics: Option<RunnerMetrics>,
    position: u64,
    positions: watch::Sender<u64>,
    /// The process's shared reader of the log, where the view follows it with others.
    shared: Option<Arc<SharedLog>>,
    /// Whether the outbox may hold events to append (the view emitted some, and they are
    /// not known to be appended yet).
    outbox_pending: bool,
}

impl Runner {
    /// A runner of `view` over `store`, writing into `db`. Call [`Runner::open`] first.
    pub fn new(db: Db, store: Arc<dyn EventStore>, view: Arc<dyn Projection>) -> Self {
        let filter = match view.event_types() {
            Some(types) => EventFilter::Types(types.iter().map(|t| (*t).to_owned()).collect()),
            None => EventFilter::All,
        };
        Runner {
            db,
            store,
            view,
            filter,
            page: 1_000,
            emit: true,
            metrics: None,
            position: 0,
            positions: watch::channel(0).0,
            shared: None,
            outbox_pending: true,
        }
    }

    /// Reads the log through `log`, shared with the process's other views (live
    /// following; a rebuild reads the store directly).
    pub fn with_shared_log(mut self, log: Arc<SharedLog>) -> Self {
        self.shared = Some(log);
        self
    }

    /// Events per transaction (default 1,000).
    pub fn with_page(mut self, page: usize) -> Self {
        self.page = page.max(1);
        self
    }

    /// Keeps the events the view decides to append in the outbox instead of appending
    /// them (a view rebuilt elsewhere, e.g. as of a past position).
    pub fn without_emitting(mut self) -> Self {
        self.emit = false;
        self
    }

    /// Reports position, lag and counts to these metrics.
    pub fn with_metrics(mut self, metrics: RunnerMetrics) -> Self {
        // Every series at zero from the start, so that the first skipped event shows in
        // `increase()` and dashboards show 0, not "no data".
        let name = self.view.name();
        metrics.skipped.with_label_values(&[name]);
        metrics.applied.with_label_values(&[name]);
        self.metrics = Some(metrics);
        self
    }

    /// The view.
    pub fn view(&self) -> &Arc<dyn Projection> {
        &self.view
    }

    /// The position the view reflects.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Follows the view's position.
    pub fn positions(&self) -> watch::Receiver<u64> {
        self.positions.subscribe()
    }

    /// Makes the view ready: creates its tables if it has none, rebuilds them if another
    /// version of the code wrote them, and appends what its outbox still holds. Returns
    /// the position it reflects.
    pub async fn open(&mut self) -> Result<u64, ProjectionError> {
        let mut present = 0;
        for t in self.view.tables() {
            present += usize::from(self.db.table_exists(t.name).await?);
        }
        let checkpoint = self.db.checkpoint(self.view.name()).await?;
        match checkpoint {
            Some((position, version))
                if version == self.view.version() && present == self.view.tables().len() =>
            {
                self.set_position(position);
            }
            _ if present == 0 && checkpoint.is_none_or(|(p, _)| p == 0) => {
                let mut tx = self.db.pool().begin().await?;
                create_tables(&mut tx, &*self.view, "", true).await?;
                claim_checkpoint(&mut tx, self.view.name(), self.view.version()).await?;
                tx.commit().await?;
                self.set_position(0);
            }
            _ => {
                tracing::info!(
                    view = self.view.name(),
                    "view tables missing or written by another version: rebuilding"
                );
                self.rebuild(&|_, _| {}).await?;
            }
        }
        self.flush_outbox().await?;
        Ok(self.position)
    }

    /// Applies the log up to its head as of the call (or `upto`, if lower). Returns the
    /// position reached.
    pub async fn catch_up(&mut self, upto: Option<u64>) -> Result<u64, ProjectionError> {
        while self.step(upto).await? {}
        Ok(self.position)
    }

    /// Follows the log until `stop` turns true. Failures are logged and retried with
    /// backoff (up to 10 s); the view's lag shows a view that cannot get past an event.
    pub async fn follow(mut self, mut stop: watch::Receiver<bool>) {
        let mut appended = self.store.appended();
        let mut backoff = Duration::from_millis(200);
        loop {
            let wait = match self.catch_up(None).await {
                Ok(_) => {
                    backoff = Duration::from_millis(200);
                    None
                }
                Err(e) => {
                    tracing::warn!(view = self.view.name(), error = %e, "projection step failed; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    Some(backoff)
                }
            };
            // After a failure, wait out the backoff; otherwise wake on appends (and poll now
            // and then: another process may append to PostgreSQL unnoticed).
            let mut closed = false;
            tokio::select! {
                changed = appended.changed(), if wait.is_none() => closed = changed.is_err(),
                _ = tokio::time::sleep(wait.unwrap_or(Duration::from_secs(1))) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if closed {
                // The store is gone: nothing will wake us; poll.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }

    /// One page in one transaction. `false` once there is nothing left up to `upto`.
    async fn step(&mut self, upto: Option<u64>) -> Result<bool, ProjectionError> {
        let head = self.store.head().await?.position;
        let until = upto.map_or(head, |u| u.min(head));
        self.report_lag(head);
        if self.position >= until {
            return Ok(false);
        }
        let (events, target) = self.page_after(self.position, until, true).await?;
        let mut tx = self.db.pool().begin().await?;
        let claimed = claim_checkpoint(&mut tx, self.view.name(), self.view.version()).await?;
        if claimed != self.position {
            // Another runner of this view (a replica, a rebuild's swap) moved it: go on
            // from where it is.
            tx.rollback().await?;
            tracing::info!(
                view = self.view.name(),
                from = self.position,
                to = claimed,
                "checkpoint moved by another runner"
            );
            self.set_position(claimed);
            return Ok(claimed < until);
        }
        let emitted = self.apply_all(&mut tx, &events, "").await?;
        save_checkpoint(&mut tx, self.view.name(), target, self.view.version()).await?;
        tx.commit().await?;
        self.set_position(target);
        self.report_lag(head);
        self.outbox_pending |= emitted;
        if self.outbox_pending {
            self.flush_outbox().await?;
            self.outbox_pending = false;
        }
        Ok(true)
    }

    /// The view's events after `after` up to `until`, at most a page, decoded (through
    /// the shared reader where it has one and `shared`); and the position the page
    /// covers. Events that do not decode are logged, counted and left out.
    async fn page_after(
        &self,
        after: u64,
        until: u64,
        shared: bool,
    ) -> Result<(Vec<Arc<Decoded>>, u64), ProjectionError> {
        let log = self.shared.as_deref().filter(|_| shared);
        let mut page =
            crate::log::page(log, &*self.store, (after, until), self.page, &self.filter).await?;
        page.events.retain(|e| match &e.envelope {
            Ok(_) => true,
            Err(error) => {
                tracing::warn!(view = self.view.name(), position = e.position, %error, "skipping an event the view cannot read");
                if let Some(m) = &self.metrics {
                    m.skipped.with_label_values(&[self.view.name()]).inc();
                }
                false
            }
        });
        Ok((page.events, page.covered))
    }

    /// Applies `events` (decoded ones) in the view's transaction and keeps what it emits in
    /// the outbox; whether it emitted anything.
    async fn apply_all(
        &self,
        conn: &mut AnyConnection,
        events: &[Arc<Decoded>],
        suffix: &'static str,
    ) -> Result<bool, ProjectionError> {
        let mut tx = ViewTx::new(conn, suffix);
        let page: Vec<Recorded<'_>> = events
            .iter()
            .filter_map(|e| {
                Some(Recorded {
                    position: e.position,
                    recorded_at: e.recorded_at,
                    envelope: e.envelope.as_ref().ok()?,
                })
            })
            .collect();
        self.view.apply(&mut tx, &page).await?;
        let emitted = tx.take_emitted();
        for e in &emitted {
            sqlx::query(
                "INSERT INTO projection_outbox (event_id, view, envelope) VALUES ($1, $2, $3) \
                 ON CONFLICT (event_id) DO NOTHING",
            )
            .bind(e.event_id.to_string())
            .bind(self.view.name())
            .bind(serde_json::to_string(e).map_err(|err| ProjectionError::Config(err.to_string()))?)
            .execute(&mut *conn)
            .await?;
        }
        if let Some(m) = &self.metrics {
            m.applied
                .with_label_values(&[self.view.name()])
                .inc_by(events.len() as u64);
        }
        Ok(!emitted.is_empty())
    }

    /// Rebuilds the view from position 0 into fresh tables while the live ones keep
    /// serving, then swaps them in one transaction (which also applies whatever was
    /// appended meanwhile). `progress(position, head)` is called after each page.
    pub async fn rebuild(&mut self, progress: &dyn Fn(u64, u64)) -> Result<u64, ProjectionError> {
        let mut tx = self.db.pool().begin().await?;
        drop_tables(&mut tx, &*self.view, NEXT).await?;
        create_tables(&mut tx, &*self.view, NEXT, false).await?;
        tx.commit().await?;

        let head = self.store.head().await?.position;
        let mut position = 0;
        while position < head {
            let (events, target) = self.page_after(position, head, false).await?;
            let mut tx = self.db.pool().begin().await?;
            self.apply_all(&mut tx, &events, NEXT).await?;
            tx.commit().await?;
            position = target;
            progress(position, head);
        }

        // The swap: hold the live checkpoint, apply what came in since, replace the tables.
        let mut tx = self.db.pool().begin().await?;
        claim_checkpoint(&mut tx, self.view.name(), self.view.version()).await?;
        let now_head = self.store.head().await?.position;
        while position < now_head {
            let (events, target) = self.page_after(position, now_head, false).await?;
            self.apply_all(&mut tx, &events, NEXT).await?;
            position = target;
        }
        drop_tables(&mut tx, &*self.view, "").await?;
        for t in self.view.tables() {
            sqlx::query(&format!(
                "ALTER TABLE {}{NEXT} RENAME TO {}",
                t.name, t.name
            ))
            .execute(&mut *tx)
            .await?;
        }
        create_indexes(&mut tx, &*self.view).await?;
        save_checkpoint(&mut tx, self.view.name(), position, self.view.version()).await?;
        tx.commit().await?;
        self.set_position(position);
        self.flush_outbox().await?;
        Ok(position)
    }

    /// Appends the events the view decided on and clears them from the outbox. The ids
    /// are deterministic, so an event appended before a crash is not appended twice.
    async fn flush_outbox(&self) -> Result<(), ProjectionError> {
        if !self.emit {
            return Ok(());
        }
        let rows = sqlx::query("SELECT event_id, envelope FROM projection_outbox WHERE view = $1")
            .bind(self.view.name())
            .fetch_all(self.db.pool())
            .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut events = Vec::with_capacity(rows.len());
        let mut ids = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get(0)?;
            let text: String = row.try_get(1)?;
            let envelope: Envelope = serde_json::from_str(&text).map_err(|e| {
                ProjectionError::Config(format!("outbox event {id} does not read: {e}"))
            })?;
            events.push(to_event_data(&envelope));
            ids.push(id);
        }
        self.store.append(AppendBatch::new(events)).await?;
        for id in ids {
            sqlx::query("DELETE FROM projection_outbox WHERE event_id = $1")
                .bind(id)
                .execute(self.db.pool())
                .await?;
        }
        Ok(())
    }

    fn set_position(&mut self, position: u64) {
        self.position = position;
        self.positions.send_replace(position);
        if let Some(m) = &self.metrics {
            m.position
                .with_label_values(&[self.view.name()])
                .set(to_i64(position));
        }
    }

    fn report_lag(&self, head: u64) {
        if let Some(m) = &self.metrics {
            m.lag
                .with_label_values(&[self.view.name()])
                .set(to_i64(head.saturating_sub(self.position)));
        }
    }
}

async fn create_tables(
    conn: &mut AnyConnection,
    view: &dyn Projection,
    suffix: &str,
    indexes: bool,
) -> Result<(), ProjectionError> {
    for t in view.tables() {
        sqlx::query(&format!(
            "CREATE TABLE IF NOT EXISTS {}{suffix} ({})",
            t.name, t.columns
        ))
        .execute(&mut *conn)
        .await?;
    }
    if indexes {
        create_indexes(conn, view).await?;
    }
    Ok(())
}

async fn create_indexes(
    conn: &mut AnyConnection,
    view: &dyn Projection,
) -> Result<(), ProjectionError> {
    for t in view.tables() {
        for (suffix, columns) in t.indexes {
            sqlx::query(&format!(
                "CREATE INDEX IF NOT EXISTS {}_{suffix} ON {} ({columns})",
                t.name, t.name
            ))
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

async fn drop_tables(
    conn: &mut AnyConnection,
    view: &dyn Projection,
    suffix: &str,
) -> Result<(), ProjectionError> {
    for t in view.tables() {
        sqlx::query(&format!("DROP TABLE IF EXISTS {}{suffix}", t.name))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Where a view stands.
#[derive(Debug, Clone, Serialize)]
pub struct ViewStatus {
    /// The view.
    pub name: String,
    /// The version of the code that wrote its tables (`None` if never built).
    pub version: Option<i64>,
    /// The position it reflects.
    pub position: u64,
    /// Events in the store it has not applied.
    pub lag: u64,
}

/// The status of `views` against the store's head.
pub async fn views_status(
    db: &Db,
    store: &dyn EventStore,
    views: &[Arc<dyn Projection>],
) -> Result<(u64, Vec<ViewStatus>), ProjectionError> {
    let head = store.head().await?.position;
    let mut out = Vec::with_capacity(views.len());
    for v in views {
        let checkpoint = db.checkpoint(v.name()).await?;
        let position = checkpoint.map_or(0, |(p, _)| p);
        out.push(ViewStatus {
            name: v.name().to_owned(),
            version: checkpoint.map(|(_, v)| v),
            position,
            lag: head.saturating_sub(position),
        });
    }
    Ok((head, out))
}

/// Opens every view (creating or rebuilding its tables as needed) and follows the log with
/// each in its own task until `stop` turns true.
pub async fn run_all(
    db: &Db,
    store: &Arc<dyn EventStore>,
    views: &[Arc<dyn Projection>],
    metrics: Option<RunnerMetrics>,
    stop: watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, ProjectionError> {
    let mut tasks = Vec::with_capacity(views.len());
    // One reading of the log for all of them: pages of 1,000 events, the last 20,000 kept
    // (the views move through the log together; one that falls further behind reads the
    // store on its own until it catches up).
    let log = Arc::new(SharedLog::new(Arc::clone(store), 1_000, 20_000));
    for v in views {
        let mut runner = Runner::new(db.clone(), Arc::clone(store), Arc::clone(v))
            .with_shared_log(Arc::clone(&log));
        if let Some(m) = &metrics {
            runner = runner.with_metrics(m.clone());
        }
        runner.open().await?;
        tasks.push(tokio::spawn(runner.follow(stop.clone())));
    }
    Ok(tasks)
}
