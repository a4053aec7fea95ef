//! The privacy processor as the binary assembles it: `[processors.privacy.config]`
//! (operators per entity type, thresholds), the vault's key store on the event store's
//! database, and `insights vault reveal|erase` for authorised re-identification and
//! erasure (crypto-shredding).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use futures::future::BoxFuture;
use insights_event_store::{AppendBatch, EventFilter, EventStore};
use insights_privacy::vault::{KeyStore, StoredKey, Vault, VaultError};
use insights_privacy::{Operator, PrivacyConfig};
use insights_runtime::records::{from_recorded, to_event_data};
use insights_schemas::{Envelope, Event, SealedPii, SubjectErased, Timestamp, current_version};
use insights_topology::Topology;
use serde::Deserialize;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};

/// `[processors.privacy.config]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Entity type → `redact`, `mask`, `pseudonymize` or `encrypt`.
    #[serde(default)]
    operators: BTreeMap<String, String>,
    /// Characters a mask keeps.
    mask_keep_last: Option<usize>,
    /// Entity type → least score.
    #[serde(default)]
    thresholds: BTreeMap<String, f64>,
}

fn entity_type(name: &str) -> Result<&'static str> {
    insights_privacy::tagger::entity_type(name)
        .ok_or_else(|| anyhow::anyhow!("[processors.privacy.config]: unknown entity type {name:?}"))
}

/// The processor's configuration: the defaults of [`PrivacyConfig::new`], then the
/// topology's settings.
pub fn config(key: [u8; 32], topology: &Topology) -> Result<PrivacyConfig> {
    let spec = topology.processors.get("privacy");
    let table = spec.map(|p| p.config.clone()).unwrap_or_default();
    let settings: Settings = toml::Value::Table(table)
        .try_into()
        .context("[processors.privacy.config] in topology.toml")?;
    let mut config = PrivacyConfig::new(key);
    if let Some(out) = spec.and_then(|p| p.outputs.first()) {
        config.output_topic = out.clone();
    }
    let keep_last = settings.mask_keep_last.unwrap_or(4);
    for (ty, op) in &settings.operators {
        let op = Operator::parse(op, keep_last).ok_or_else(|| {
            anyhow::anyhow!(
                "[processors.privacy.config] operators: {op:?} for {ty} is not redact, mask, pseudonymize or encrypt"
            )
        })?;
        config.operators.insert(entity_type(ty)?, op);
    }
    for (ty, score) in &settings.thresholds {
        if !(0.0..=1.0).contains(score) {
            bail!("[processors.privacy.config] thresholds: {ty} = {score} is not between 0 and 1");
        }
        config.thresholds.insert(entity_type(ty)?, *score);
    }
    Ok(config)
}

/// Whether `config` seals anything (and so needs the vault).
pub fn encrypts(config: &PrivacyConfig) -> bool {
    config.operators.values().any(|o| *o == Operator::Encrypt)
}

type Job = Box<dyn FnOnce(AnyPool) -> BoxFuture<'static, ()> + Send>;

/// The vault's subject keys in the event store's database (PostgreSQL or SQLite), table
/// `vault_subject_keys`: tenant, subject, the wrapped key (hex; NULL once erased),
/// created and erased times. The processor calls it synchronously from its batch
/// thread, so it owns a small runtime on a thread of its own and answers over a channel.
pub struct SqlKeys {
    jobs: tokio::sync::mpsc::UnboundedSender<Job>,
}

impl std::fmt::Debug for SqlKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqlKeys")
    }
}

const DDL: &str = "CREATE TABLE IF NOT EXISTS vault_subject_keys (
    tenant TEXT NOT NULL,
    subject TEXT NOT NULL,
    wrapped TEXT,
    created_at BIGINT NOT NULL,
    erased_at BIGINT,
    PRIMARY KEY (tenant, subject))";

fn now() -> Timestamp {
    Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
    )
}

fn now_micros() -> i64 {
    now().micros()
}

impl SqlKeys {
    /// Connects to `url` and creates the table if needed.
    pub fn open(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let (jobs, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
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
                        sqlx::query(DDL).execute(&pool).await?;
                        Ok::<_, sqlx::Error>(pool)
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
            })
            .context("starting the vault key store thread")?;
        ready_rx
            .recv()
            .context("the vault key store thread stopped")?
            .map_err(|e| anyhow::anyhow!("vault key store: {e}"))?;
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
            .send(Box::new(move |pool| {
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
) -> Result<std::collections::HashMap<(String, String), Option<String>>, sqlx::Error> {
    let mut found = std::collections::HashMap::new();
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

/// The vault for a pipeline whose privacy settings encrypt: keys in the store's database.
pub fn vault(config: &PrivacyConfig, store_url: &str) -> Result<Arc<Vault>> {
    let keys = SqlKeys::open(store_url)
        .with_context(|| format!("opening the vault's key store at {store_url}"))?;
    Ok(Arc::new(Vault::new(config.vault_kek(), Arc::new(keys))))
}

/// `insights vault`.
#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Print the original value behind a token of the encrypt operator (re-identification;
    /// needs the privacy secret).
    Reveal(RevealArgs),
    /// Destroy a data subject's key: every value sealed for them becomes unreadable, in
    /// the log and in every backup, while the hash chain still verifies. Appends a
    /// `SubjectErased` event.
    Erase(EraseArgs),
}

/// `insights vault reveal`.
#[derive(Debug, Args)]
pub struct RevealArgs {
    /// The token, e.g. `<PERSON_v3f9a1c2e5b7d8e0f>`.
    token: String,
    /// Tenant of the interaction.
    #[arg(long, default_value = "default")]
    tenant: String,
    /// The privacy secret's file, read when INSIGHTS_PRIVACY_KEY is unset.
    #[arg(long, default_value = "data/privacy.key")]
    privacy_key_file: PathBuf,
}

/// `insights vault erase`.
#[derive(Debug, Args)]
pub struct EraseArgs {
    /// Tenant of the subject.
    #[arg(long, default_value = "default")]
    tenant: String,
    /// The customer id as the source system knows it (its pseudonym is computed).
    #[arg(long, conflicts_with = "subject", required_unless_present = "subject")]
    customer: Option<String>,
    /// The subject's pseudonym (`cust_…`) as events carry it.
    #[arg(long)]
    subject: Option<String>,
    /// Who asked (recorded on the `SubjectErased` event).
    #[arg(long)]
    requested_by: String,
    /// The privacy secret's file, read when INSIGHTS_PRIVACY_KEY is unset.
    #[arg(long, default_value = "data/privacy.key")]
    privacy_key_file: PathBuf,
}

/// Runs `insights vault …`.
pub async fn run(global: &crate::Global, command: VaultCommand) -> Result<ExitCode> {
    let (url, _) = crate::store_url(global)?;
    match command {
        VaultCommand::Reveal(args) => {
            let key = crate::pipeline::privacy_key(&args.privacy_key_file, false)?;
            let store = crate::open_store(global).await?;
            let Some(sealed) = find_sealed(&*store, &args.tenant, &args.token).await? else {
                bail!(
                    "no sealed value for {} in tenant {}",
                    args.token,
                    args.tenant
                );
            };
            let config = PrivacyConfig::new(key);
            let url2 = url.clone();
            let tenant = args.tenant.clone();
            let value = tokio::task::spawn_blocking(move || {
                let vault = vault(&config, &url2)?;
                Ok::<_, anyhow::Error>(vault.reveal(&tenant, &sealed)?)
            })
            .await??;
            println!("{value}");
            Ok(ExitCode::SUCCESS)
        }
        VaultCommand::Erase(args) => {
            let key = crate::pipeline::privacy_key(&args.privacy_key_file, false)?;
            let config = PrivacyConfig::new(key);
            let subject = match (&args.subject, &args.customer) {
                (Some(s), _) => s.clone(),
                (None, Some(c)) => config.customer_pseudonym(&args.tenant, c),
                (None, None) => bail!("name the subject: --customer or --subject"),
            };
            let (tenant, s) = (args.tenant.clone(), subject.clone());
            let destroyed = tokio::task::spawn_blocking(move || {
                let vault = vault(&config, &url)?;
                Ok::<_, anyhow::Error>(vault.erase(&tenant, &s)?)
            })
            .await??;
            let store = crate::open_store(global).await?;
            let at = now();
            let event = Event::SubjectErased(SubjectErased {
                subject: subject.clone(),
                requested_by: args.requested_by.clone(),
                key_destroyed_at: at,
            });
            let key = format!("erasure/{}/{subject}", args.tenant);
            let envelope = Envelope {
                event_id: Envelope::derived_id("vault", &key, at, 0),
                schema_version: current_version(event.event_type()).unwrap_or(1),
                stream_id: format!("subject-{subject}"),
                causation_id: None,
                correlation_id: key,
                occurred_at: at,
                producer: "vault".into(),
                producer_version: env!("CARGO_PKG_VERSION").into(),
                event,
            };
            store
                .append(AppendBatch::new(vec![to_event_data(&envelope)]))
                .await?;
            println!(
                "{}: {subject} of tenant {}",
                if destroyed {
                    "key destroyed"
                } else {
                    "no key was held (marked erased; none will be made)"
                },
                args.tenant
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Re-identification over the API (`POST /v1/vault/reveal`): the sealed value found in the
/// store's scrubbed interactions, opened by the vault.
pub struct StoreReidentifier {
    store: Arc<dyn EventStore>,
    vault: Arc<Vault>,
}

impl StoreReidentifier {
    /// Reveals from `store` with `vault`.
    pub fn new(store: Arc<dyn EventStore>, vault: Arc<Vault>) -> Self {
        Self { store, vault }
    }
}

impl std::fmt::Debug for StoreReidentifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreReidentifier").finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl insights_api::Reidentifier for StoreReidentifier {
    async fn reveal(
        &self,
        tenant: &str,
        token: &str,
    ) -> Result<insights_api::Revealed, insights_api::RevealError> {
        use insights_api::RevealError;
        let sealed = find_sealed(&*self.store, tenant, token)
            .await
            .map_err(|e| RevealError::Failed(format!("{e:#}")))?
            .ok_or(RevealError::NotFound)?;
        let entity_type = sealed.entity_type.clone();
        let (vault, tenant) = (Arc::clone(&self.vault), tenant.to_owned());
        let opened = tokio::task::spawn_blocking(move || vault.reveal(&tenant, &sealed))
            .await
            .map_err(|e| RevealError::Failed(e.to_string()))?;
        match opened {
            Ok(value) => Ok(insights_api::Revealed { entity_type, value }),
            Err(VaultError::Erased(_)) => Err(RevealError::Erased),
            Err(e) => Err(RevealError::Failed(e.to_string())),
        }
    }
}

/// The sealed value behind `token`: the scrubbed interactions are searched newest first.
async fn find_sealed(
    store: &dyn EventStore,
    tenant: &str,
    token: &str,
) -> Result<Option<SealedPii>> {
    let filter = EventFilter::Types(vec!["InteractionScrubbed".into()]);
    let mut after = 0;
    let mut found = None;
    loop {
        let page = store.read_all(after, 5_000, &filter).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
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
