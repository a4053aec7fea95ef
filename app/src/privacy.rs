//! The privacy processor's resources as a run assembles them: the vault with its key store
//! on the event store's database, and re-identification for the API.

use std::sync::Arc;

use anyhow::{Context, Result};
use insights_event_store::EventStore;
use insights_privacy::vault::{Vault, VaultError};
use insights_privacy::{PrivacyConfig, PrivacySettings};
use insights_topology::{ProcessorConfig, Topology};

/// The vault for a pipeline whose privacy settings encrypt: keys in the store's database.
pub fn vault(config: &PrivacyConfig, store_url: &str) -> Result<Arc<Vault>> {
    insights_vault_store::vault(config, store_url)
        .with_context(|| format!("opening the vault's key store at {store_url}"))
}

/// A vault for re-identification in a process that does not run privacy (`--views-only`,
/// an API replica): only where the topology encrypts something; otherwise (or if the key
/// store cannot be opened, which is reported) the reveal endpoint answers 503.
pub(crate) fn reveal_vault(
    key: [u8; 32],
    topology: &Topology,
    store_url: &str,
) -> Option<Arc<Vault>> {
    let config = PrivacySettings::from_topology(topology).ok()?.with_key(key);
    if !config.encrypts() {
        return None;
    }
    match vault(&config, store_url) {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!("insights: re-identification over the API is off: {e:#}");
            None
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
        let sealed = insights_vault_store::find_sealed(&*self.store, tenant, token)
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
