//! A view rebuild killed with SIGKILL half-way: the live view and its checkpoint are as
//! they were, and the next rebuild ends with the same view.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::OutputWithin;

use insights_event_store::{AppendBatch, EventStore, SqliteStore};
use insights_projections::{Db, views};
use insights_schemas::SentimentLabel;

const N: u128 = 40_000;

fn rebuild(dir: &Path, store: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_insights"));
    cmd.args(["replay", "--rebuild", "sentiment", "--store", store])
        .current_dir(dir)
        .env_remove("INSIGHTS_STORE_URL")
        .env_remove("INSIGHTS_TOPOLOGY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

async fn view_rows(db: &Db) -> Vec<serde_json::Map<String, serde_json::Value>> {
    db.dump("view_sentiment").await.expect("dump")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_killed_midway_leaves_the_live_view_and_the_next_one_completes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("events.db").display());
    let store = SqliteStore::open(&url, 2).await.expect("store");
    let products = ["router", "tv-box", "billing", "mobile-app"];
    let labels = [
        SentimentLabel::Negative,
        SentimentLabel::Neutral,
        SentimentLabel::Positive,
    ];
    let mut n = 0;
    while n < N {
        let batch: Vec<_> = (n..(n + 2_000).min(N))
            .map(|i| {
                let mut c =
                    testkit::events::context(i + 1, 1_794_182_400_000_000 + i as i64 * 30_000_000);
                c.product = Some(products[i as usize % 4].into());
                let e = testkit::events::scored_in(i + 1, c, "text", labels[i as usize % 3], 0.7);
                insights_event_store::envelope::to_event_data(&e)
            })
            .collect();
        store
            .append(AppendBatch::new(batch))
            .await
            .expect("appends");
        n = (n + 2_000).min(N);
    }

    let first = rebuild(dir.path(), &url)
        .output_within(testkit::COMMAND_LIMIT)
        .expect("runs");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let db = Db::connect(&url, 2).await.expect("views db");
    let live = view_rows(&db).await;
    let checkpoint = db.checkpoint("sentiment").await.expect("checkpoint");
    assert_eq!(checkpoint.map(|(p, _)| p), Some(N as u64));

    // Kill the second rebuild once it has filled part of its fresh tables.
    let mut child = rebuild(dir.path(), &url).spawn().expect("spawns");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let filled: i64 = if db
            .table_exists("view_sentiment__next")
            .await
            .expect("exists")
        {
            sqlx::query_scalar("SELECT COUNT(*) FROM view_sentiment__next")
                .fetch_one(db.pool())
                .await
                .unwrap_or(0)
        } else {
            0
        };
        if filled > 0 {
            break;
        }
        assert!(
            child.try_wait().expect("waits").is_none(),
            "the rebuild finished before it could be killed"
        );
        assert!(
            Instant::now() < deadline,
            "the rebuild never started filling"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(child.try_wait().expect("waits").is_none(), "still running");
    child.kill().expect("SIGKILL");
    let _ = child.wait();

    assert_eq!(
        db.checkpoint("sentiment").await.expect("checkpoint"),
        checkpoint
    );
    assert_eq!(view_rows(&db).await, live, "the live view is untouched");
    let s = views::sentiment::query(&db, &Default::default())
        .await
        .expect("query");
    assert_eq!(s["totals"]["n"], N as u64);

    let again = rebuild(dir.path(), &url)
        .output_within(testkit::COMMAND_LIMIT)
        .expect("runs");
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(
        !db.table_exists("view_sentiment__next")
            .await
            .expect("exists")
    );
    assert_eq!(view_rows(&db).await, live, "the same view again");
    assert_eq!(
        db.checkpoint("sentiment").await.expect("checkpoint"),
        checkpoint
    );
}
