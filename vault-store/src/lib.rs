//! Where the privacy vault keeps what it needs outside the processor:
//!
//! - [`SqlKeys`], its [`KeyStore`] of subject keys in the event store's database
//!   (PostgreSQL or SQLite), table `vault_subject_keys`, created and upgraded by versioned
//!   migrations (`migrations/`, versions 1001 and up, recorded beside the event store's);
//! - [`find_sealed`], the sealed value behind a token, searched in the stored scrubbed
//!   interactions (re-identification by `insights vault reveal` and the HTTP API);
//! - [`erasure`], the `SubjectErased` event that records a crypto-shredding.
//!
//! The privacy processor calls its key store synchronously from its batch thread, so
//! [`SqlKeys`] owns a small runtime on a thread of its own and answers over a bounded
//! channel.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use insights_event_store::envelope::{from_recorded, to_event_data};
use insights_event_store::{AppendBatch, EventFilter, EventStore, PAGE_SIZE, Pages, StoreError};
use insights_privacy::PrivacyConfig;
use insights_privacy::vault::{KeyStore, StoredKey, Vault, VaultError};
use insights_schemas::{Envelope, Event, SealedPii, SubjectErased, Timestamp, current_version};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};

/// The key store's migrations (portable SQL: one set for both backends).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate::Migrator {
    // The event store's versions share the table.
    ignore_missing: true,
    ..sqlx::migrate!("./migrations")
};

/// Jobs waiting for the key store's thread; a full queue makes callers wait.
const QUEUE: usize = 64;

/// Why the key store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Connecting or migrating failed.
    #[error("vault key store: {0}")]
    Database(String),
    /// Its thread could not start.
    #[error("starting the vault key store thread: {0}")]
    Thread(#[from] std::io::Error),
}

type Job = Box<dyn FnOnce(AnyPool) -> BoxFuture<'static, ()> + Send>;

/// The vault's subject keys in the event store's database (PostgreSQL or SQLite), table
/// `vault_subject_keys`: tenant, subject, the wrapped key (hex; NULL once erased),
/// created and erased times. The processor calls it synchronously from its batch
/// thread, so it owns a small runtime on a thread of its own and answers over a channel.
pub struct SqlKeys {
    jobs: tokio::sync::mpsc::Sender<Job>,
}

impl std::fmt::Debug for SqlKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqlKeys")
    }
}

fn now_micros() -> i64 {
    Timestamp::now().micros()
}

impl SqlKeys {
    /// Connects to `url` and applies the key store's migrations.
    pub fn open(url: &str) -> Result<Self, OpenError> {
        sqlx::any::install_default_drivers();
        let (jobs, mut rx) = tokio::sync::mpsc::channel::<Job>(QUEUE);
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<Result<(), String>>(1);
        let url = url.to_owned();
        std::thread::Builder::new()
            .name("vault-keys".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                rt.block_on(async move {
                    let pool = async {
                        let pool = AnyPoolOptions::new()
                            .max_connections(2)
                            .connect(&url)
                            .await?;
                        MIGRATOR.run(&pool).await?;
                        Ok::<_, sqlx::migrate::MigrateError>(pool)
                    }
                    .await;
                    let pool = match pool {
                        Ok(p) => {
                            let _ = ready_tx.send(Ok(()));
                            p
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    while let Some(job) = rx.recv().await {
                        job(pool.clone()).await;
                    }
                });
            })?;
        ready_rx
            .recv()
            .map_err(|_| OpenError::Database("its thread stopped".into()))?
            .map_err(OpenError::Database)?;
        Ok(Self { jobs })
    }

    fn call<T, F, Fut>(&self, f: F) -> Result<T, VaultError>
    where
        T: Send + 'static,
        F: FnOnce(AnyPool) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, sqlx::Error>> + Send + 'static,
    {
        let stopped = || VaultError::Store("the vault key store thread stopped".into());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.jobs
            .blocking_send(Box::new(move |pool| {
                Box::pin(async move {
                    let _ = tx.send(f(pool).await);
                })
            }))
            .map_err(|_| stopped())?;
        rx.recv()
            .map_err(|_| stopped())?
            .map_err(|e| VaultError::Store(e.to_string()))
    }
}

fn decode_key(wrapped: Option<String>) -> Result<StoredKey, VaultError> {
    let Some(hex_text) = wrapped else {
        return Ok(StoredKey::Erased);
    };
    let bytes = hex::decode(&hex_text)
        .map_err(|_| VaultError::Store("a stored subject key is not hex".into()))?;
    if bytes.len() <= 12 {
        return Err(VaultError::Store(
            "a stored subject key is truncated".into(),
        ));
    }
    let (nonce, wrapped) = bytes.split_at(12);
    let mut n = [0u8; 12];
    n.copy_from_slice(nonce);
    Ok(StoredKey::Wrapped(n, wrapped.to_vec()))
}

async fn select_key(
    pool: &AnyPool,
    tenant: &str,
    subject: &str,
) -> Result<Option<Option<String>>, sqlx::Error> {
    let row =
        sqlx::query("SELECT wrapped FROM vault_subject_keys WHERE tenant = $1 AND subject = $2")
            .bind(tenant.to_owned())
            .bind(subject.to_owned())
            .fetch_optional(pool)
            .await?;
    row.map(|r| r.try_get::<Option<String>, _>(0)).transpose()
}

/// Subjects looked up (or inserted) per statement: two or four parameters each, well
/// under SQLite's and PostgreSQL's limits.
const KEYS_PER_QUERY: usize = 500;

fn wrapped_hex(key: StoredKey) -> Option<String> {
    match key {
        StoredKey::Wrapped(nonce, bytes) => Some(hex::encode([&nonce[..], &bytes].concat())),
        StoredKey::Erased => None,
    }
}

/// The stored (wrapped) keys of `subjects` that have a row, by (tenant, subject).
async fn select_keys(
    pool: &AnyPool,
    subjects: &[(String, String)],
) -> Result<HashMap<(String, String), Option<String>>, sqlx::Error> {
    let mut found = HashMap::new();
    for chunk in subjects.chunks(KEYS_PER_QUERY) {
        let pairs: Vec<String> = (0..chunk.len())
            .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
            .collect();
        let sql = format!(
            "SELECT tenant, subject, wrapped FROM vault_subject_keys \
             WHERE (tenant, subject) IN ({})",
            pairs.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for (t, s) in chunk {
            query = query.bind(t.clone()).bind(s.clone());
        }
        for row in query.fetch_all(pool).await? {
            found.insert(
                (row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?),
                row.try_get::<Option<String>, _>(2)?,
            );
        }
    }
    Ok(found)
}

impl KeyStore for SqlKeys {
    fn key(&self, tenant: &str, subject: &str) -> Result<Option<StoredKey>, VaultError> {
        let (t, s) = (tenant.to_owned(), subject.to_owned());
        let found = self.call(move |pool| async move { select_key(&pool, &t, &s).await })?;
        found.map(decode_key).transpose()
    }

    fn insert_key(
        &self,
        tenant: &str,
        subject: &str,
        key: StoredKey,
    ) -> Result<StoredKey, VaultError> {
        let wrapped = wrapped_hex(key);
        let (t, s) = (tenant.to_owned(), subject.to_owned());
        let stored = self.call(move |pool| async move {
            sqlx::query(
                "INSERT INTO vault_subject_keys (tenant, subject, wrapped, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (tenant, subject) DO NOTHING",
            )
            .bind(t.clone())
            .bind(s.clone())
            .bind(wrapped)
            .bind(now_micros())
            .execute(&pool)
            .await?;
            select_key(&pool, &t, &s).await
        })?;
        decode_key(stored.flatten())
    }

    fn keys(&self, subjects: &[(String, String)]) -> Result<Vec<Option<StoredKey>>, VaultError> {
        let wanted = subjects.to_vec();
        let found = self.call(move |pool| async move { select_keys(&pool, &wanted).await })?;
        subjects
            .iter()
            .map(|name| found.get(name).cloned().map(decode_key).transpose())
            .collect()
    }

    fn insert_keys(
        &self,
        keys: Vec<((String, String), StoredKey)>,
    ) -> Result<Vec<StoredKey>, VaultError> {
        let names: Vec<(String, String)> = keys.iter().map(|(n, _)| n.clone()).collect();
        let rows: Vec<(String, String, Option<String>)> = keys
            .into_iter()
            .map(|((t, s), key)| (t, s, wrapped_hex(key)))
            .collect();
        let wanted = names.clone();
        let found = self.call(move |pool| async move {
            let now = now_micros();
            for chunk in rows.chunks(KEYS_PER_QUERY) {
                let values: Vec<String> = (0..chunk.len())
                    .map(|i| {
                        format!(
                            "(${}, ${}, ${}, ${})",
                            4 * i + 1,
                            4 * i + 2,
                            4 * i + 3,
                            4 * i + 4
                        )
                    })
                    .collect();
                let sql = format!(
                    "INSERT INTO vault_subject_keys (tenant, subject, wrapped, created_at) \
                     VALUES {} ON CONFLICT (tenant, subject) DO NOTHING",
                    values.join(", ")
                );
                let mut query = sqlx::query(&sql);
                for (t, s, w) in chunk {
                    query = query
                        .bind(t.clone())
                        .bind(s.clone())
                        .bind(w.clone())
                        .bind(now);
                }
                query.execute(&pool).await?;
            }
            select_keys(&pool, &wanted).await
        })?;
        names
            .iter()
            .map(|name| match found.get(name) {
                Some(stored) => decode_key(stored.clone()),
                None => Err(VaultError::Store(
                    "a subject key just stored is not there".into(),
                )),
            })
            .collect()
    }

    fn erase_key(&self, tenant: &str, subject: &str) -> Result<bool, VaultError> {
        let (t, s) = (tenant.to_owned(), subject.to_owned());
        self.call(move |pool| async move {
            let now = now_micros();
            let destroyed = sqlx::query(
                "UPDATE vault_subject_keys SET wrapped = NULL, erased_at = $3 \
                 WHERE tenant = $1 AND subject = $2 AND wrapped IS NOT NULL",
            )
            .bind(t.clone())
            .bind(s.clone())
            .bind(now)
            .execute(&pool)
            .await?
            .rows_affected();
            // A subject never seen is marked erased too: no key is ever made for them.
            sqlx::query(
                "INSERT INTO vault_subject_keys (tenant, subject, wrapped, created_at, erased_at) \
                 VALUES ($1, $2, NULL, $3, $3) ON CONFLICT (tenant, subject) DO NOTHING",
            )
            .bind(t)
            .bind(s)
            .bind(now)
            .execute(&pool)
            .await?;
            Ok(destroyed > 0)
        })
    }
}

/// The sealed value behind `token` in `tenant`: the newest stored scrubbed interaction
/// that carries it wins. Events that do not decode are skipped (they cannot hold it).
pub async fn find_sealed(
    store: &dyn EventStore,
    tenant: &str,
    token: &str,
) -> Result<Option<SealedPii>, StoreError> {
    let filter = EventFilter::Types(vec!["InteractionScrubbed".into()]);
    let mut pages = Pages::to_head(store, filter, PAGE_SIZE).await?;
    let mut found = None;
    while let Some(page) = pages.next().await? {
        for recorded in &page {
            if let Ok(Envelope {
                event: Event::InteractionScrubbed(s),
                ..
            }) = from_recorded(recorded)
                && s.context.tenant_id == tenant
                && let Some(v) = s.sealed.iter().find(|v| v.token == token)
            {
                found = Some(v.clone());
            }
        }
    }
    Ok(found)
}

/// The vault for a pipeline whose privacy settings encrypt: keys in the store's database
/// at `store_url`.
pub fn vault(config: &PrivacyConfig, store_url: &str) -> Result<Arc<Vault>, OpenError> {
    let keys = SqlKeys::open(store_url)?;
    Ok(Arc::new(Vault::new(config.vault_kek(), Arc::new(keys))))
}

/// Why an erasure did not complete.
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    /// The key could not be destroyed (nothing was recorded).
    #[error("destroying the key: {0}")]
    Vault(#[from] VaultError),
    /// The key is destroyed, but the `SubjectErased` event could not be appended; erasing
    /// again appends it (destroying a destroyed key is a no-op).
    #[error("recording the erasure: {0}")]
    Store(#[from] StoreError),
    /// The blocking task that destroys the key failed.
    #[error("the erasure task failed: {0}")]
    Task(String),
}

/// Crypto-shredding: destroys `subject`'s key in `tenant` (every value sealed for them
/// becomes unreadable, in the log and in every backup, while the hash chain still verifies)
/// and appends the [`erasure`] event to `store`. Returns whether a key was held.
pub async fn erase_subject(
    vault: Arc<Vault>,
    store: &dyn EventStore,
    tenant: &str,
    subject: &str,
    requested_by: &str,
    producer_version: &str,
) -> Result<bool, EraseError> {
    let (t, s) = (tenant.to_owned(), subject.to_owned());
    let destroyed = tokio::task::spawn_blocking(move || vault.erase(&t, &s))
        .await
        .map_err(|e| EraseError::Task(e.to_string()))??;
    let event = erasure(
        tenant,
        subject,
        requested_by,
        Timestamp::now(),
        producer_version,
    );
    store
        .append(AppendBatch::new(vec![to_event_data(&event)]))
        .await?;
    Ok(destroyed)
}

/// The `SubjectErased` event recording that `subject`'s key in `tenant` was destroyed at
/// `at` on `requested_by`'s request, on the stream `subject-{subject}`.
pub fn erasure(
    tenant: &str,
    subject: &str,
    requested_by: &str,
    at: Timestamp,
    producer_version: &str,
) -> Envelope {
    let event = Event::SubjectErased(SubjectErased {
        subject: subject.to_owned(),
        requested_by: requested_by.to_owned(),
        key_destroyed_at: at,
    });
    let key = format!("erasure/{tenant}/{subject}");
    Envelope {
        event_id: Envelope::derived_id("vault", &key, at, 0),
        schema_version: current_version(event.event_type()).unwrap_or(1),
        stream_id: format!("subject-{subject}"),
        causation_id: None,
        correlation_id: key,
        occurred_at: at,
        producer: "vault".into(),
        producer_version: producer_version.to_owned(),
        event,
    }
}
