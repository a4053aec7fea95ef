//! `insights vault reveal|erase`: authorised re-identification of a sealed value, and
//! erasure of a data subject's key (crypto-shredding).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use insights_privacy::PrivacyConfig;

use crate::secrets;
use crate::settings::{self, Global};
use insights_app::privacy;

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
pub async fn run(global: &Global, command: VaultCommand) -> Result<ExitCode> {
    let (url, _) = settings::store_url(global)?;
    match command {
        VaultCommand::Reveal(args) => {
            let key = secrets::privacy_key(&args.privacy_key_file, false)?;
            let store = settings::open_store(global).await?;
            let Some(sealed) =
                insights_vault_store::find_sealed(&*store, &args.tenant, &args.token).await?
            else {
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
                let vault = privacy::vault(&config, &url2)?;
                Ok::<_, anyhow::Error>(vault.reveal(&tenant, &sealed)?)
            })
            .await??;
            println!("{value}");
            Ok(ExitCode::SUCCESS)
        }
        VaultCommand::Erase(args) => {
            let key = secrets::privacy_key(&args.privacy_key_file, false)?;
            let config = PrivacyConfig::new(key);
            let subject = match (&args.subject, &args.customer) {
                (Some(s), _) => s.clone(),
                (None, Some(c)) => config.customer_pseudonym(&args.tenant, c),
                (None, None) => bail!("name the subject: --customer or --subject"),
            };
            let vault =
                tokio::task::spawn_blocking(move || privacy::vault(&config, &url)).await??;
            let store = settings::open_store(global).await?;
            let destroyed = insights_vault_store::erase_subject(
                vault,
                &*store,
                &args.tenant,
                &subject,
                &args.requested_by,
                env!("CARGO_PKG_VERSION"),
            )
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
