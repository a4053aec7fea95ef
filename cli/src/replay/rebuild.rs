//! `insights replay --rebuild VIEW [--as-of POSITION] [--out FILE]`: a view rebuilt from
//! the log and swapped in, or its state at a past position printed as JSON lines.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use insights_event_store::EventStore;
use insights_projections::views::{self, anomalies::AnomalyConfig};
use insights_projections::{Db, Projection, Runner};

use crate::output;

/// `insights replay --rebuild`.
#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// Rebuild this view (timeline, sentiment, responses, fairness, health, anomalies or
    /// `all`) from position 0 into fresh tables and swap them in at once.
    #[arg(long, value_name = "VIEW")]
    rebuild: Option<String>,
    /// With --rebuild: the view as it was at this position, built in a scratch in-memory
    /// database and printed as JSON lines (`{"table", "row"}`); the live view is untouched.
    #[arg(long, requires = "rebuild", value_name = "POSITION")]
    as_of: Option<u64>,
    /// With --as-of: write the rows to FILE instead of standard output.
    #[arg(long, requires = "as_of", value_name = "FILE")]
    out: Option<PathBuf>,
}

impl RebuildArgs {
    /// Whether a rebuild was asked for.
    pub fn wanted(&self) -> bool {
        self.rebuild.is_some()
    }
}

/// Runs the rebuild.
pub async fn rebuild(
    store: &Arc<dyn EventStore>,
    url: &str,
    config: AnomalyConfig,
    args: &RebuildArgs,
) -> Result<()> {
    let Some(name) = &args.rebuild else {
        return Ok(());
    };
    let chosen: Vec<Arc<dyn Projection>> = if name == "all" {
        views::all(config)
    } else {
        vec![views::by_name(name, config)?]
    };
    match args.as_of {
        Some(position) => as_of(store, &chosen, position, args.out.as_ref()).await,
        None => {
            let db = Db::connect(url, 4)
                .await
                .with_context(|| format!("opening the views' database at {url}"))?;
            for view in chosen {
                let name = view.name();
                let mut runner = Runner::new(db.clone(), Arc::clone(store), view);
                let head = store.head().await?.position;
                let bar = output::bar(head, &format!("rebuilding {name}"));
                runner
                    .rebuild(&|p, _| bar.set_position(p))
                    .await
                    .with_context(|| format!("rebuilding the {name} view"))?;
                bar.finish_and_clear();
                // Fold what the rebuild itself appended (the anomalies it raised).
                let at = runner.catch_up(None).await?;
                eprintln!(
                    "insights: rebuilt the {name} view up to position {at} and swapped it in"
                );
            }
            Ok(())
        }
    }
}

async fn as_of(
    store: &Arc<dyn EventStore>,
    chosen: &[Arc<dyn Projection>],
    position: u64,
    out: Option<&PathBuf>,
) -> Result<()> {
    let head = store.head().await?.position;
    if position > head {
        anyhow::bail!("--as-of {position} is beyond the log's head ({head})");
    }
    let db = Db::memory().await?;
    let mut sink: Box<dyn Write> = match out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    for view in chosen {
        let mut runner =
            Runner::new(db.clone(), Arc::clone(store), Arc::clone(view)).without_emitting();
        runner.open().await?;
        runner.catch_up(Some(position)).await?;
        let mut rows = 0;
        for t in view.tables() {
            for row in db.dump(t.name).await? {
                serde_json::to_writer(
                    &mut sink,
                    &serde_json::json!({"view": view.name(), "table": t.name, "as_of": position, "row": row}),
                )?;
                sink.write_all(b"\n")?;
                rows += 1;
            }
        }
        eprintln!(
            "insights: the {} view as of position {position}: {rows} rows",
            view.name()
        );
    }
    sink.flush()?;
    Ok(())
}
