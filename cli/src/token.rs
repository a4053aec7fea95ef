//! `insights token issue`: a bearer token for the HTTP API, signed with the JWT secret.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use insights_api::Role;

use crate::auth::SecretArgs;

/// `insights token issue`.
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Who the token is for (recorded as the reviewer on review events).
    #[arg(long)]
    subject: String,
    /// A role: analyst, reviewer, auditor or admin; repeatable.
    #[arg(long = "role", required = true, value_parser = parse_role)]
    roles: Vec<Role>,
    /// How long it is valid: e.g. 30m, 8h, 7d.
    #[arg(long, default_value = "8h", value_parser = parse_ttl)]
    ttl: Duration,
    #[command(flatten)]
    secret: SecretArgs,
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("{s:?} is not a role (analyst, reviewer, auditor, admin)"))
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = insights_topology::parse_duration(s)?;
    if d.is_zero() {
        return Err("the duration must be positive".into());
    }
    Ok(d)
}

/// Prints a token. The secret must exist already (the running API must know it).
pub fn issue(args: &IssueArgs) -> Result<ExitCode> {
    if args.subject.trim().is_empty() {
        bail!("--subject is empty");
    }
    let auth = args.secret.auth(false)?;
    println!("{}", auth.issue(&args.subject, &args.roles, args.ttl)?);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_roles_parse_or_say_why_not() {
        assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(604_800)));
        assert!(parse_ttl("8").is_err());
        assert!(parse_ttl("0h").is_err());
        assert!(parse_ttl("h").is_err());
        assert_eq!(parse_role("reviewer"), Ok(Role::Reviewer));
        assert!(parse_role("king").is_err());
    }
}
