//! Pipeline health: events per type per minute (by the store's time), dead letters by
//! processor and error class, and what each producer (processor, version) has written.
//! The API adds each view's lag; Kafka consumer lag is on `/metrics`.

use async_trait::async_trait;
use insights_schemas::Event;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{MINUTE, bucket, with_times};
use crate::db::{Db, now_micros, row_json, to_i64};
use crate::fold::fold;
use crate::{Projection, ProjectionError, Recorded, Table, ViewTx};

/// The pipeline health view.
#[derive(Debug, Clone, Copy)]
pub struct Health;

const TABLES: &[Table] = &[
    Table {
        name: "view_event_rate",
        columns: "minute BIGINT NOT NULL, event_type TEXT NOT NULL, n BIGINT NOT NULL, \
                  PRIMARY KEY (minute, event_type)",
        indexes: &[],
    },
    Table {
        name: "view_dead_letters",
        columns: "processor TEXT NOT NULL, error_class TEXT NOT NULL, n BIGINT NOT NULL, \
                  last_error TEXT NOT NULL, last_topic TEXT NOT NULL, last_at BIGINT NOT NULL, \
                  PRIMARY KEY (processor, error_class)",
        indexes: &[],
    },
    Table {
        name: "view_producers",
        columns: "producer TEXT NOT NULL, producer_version TEXT NOT NULL, n BIGINT NOT NULL, \
                  last_position BIGINT NOT NULL, last_recorded_at BIGINT NOT NULL, \
                  PRIMARY KEY (producer, producer_version)",
        indexes: &[],
    },
];

#[async_trait]
impl Projection for Health {
    fn name(&self) -> &'static str {
        "health"
    }

    fn version(&self) -> i64 {
        1
    }

    fn tables(&self) -> &'static [Table] {
        TABLES
    }

    fn event_types(&self) -> Option<&'static [&'static str]> {
        None
    }

    async fn apply(
        &self,
        tx: &mut ViewTx<'_>,
        page: &[Recorded<'_>],
    ) -> Result<(), ProjectionError> {
        let mut rates = Vec::with_capacity(page.len());
        let mut producers = Vec::with_capacity(page.len());
        let mut dead = Vec::new();
        for r in page {
            let e = r.envelope;
            rates.push((
                (bucket(r.recorded_at, MINUTE), e.event_type().to_owned()),
                (),
            ));
            producers.push((
                (e.producer.clone(), e.producer_version.clone()),
                (to_i64(r.position), r.recorded_at),
            ));
            if let Event::DeadLettered(d) = &e.event {
                dead.push((
                    (d.processor.clone(), d.error_class.clone()),
                    (d.error.clone(), d.topic.clone(), r.recorded_at),
                ));
            }
        }
        let table = tx.table("view_event_rate");
        fold(
            tx.conn(),
            &table,
            &["minute", "event_type"],
            &["n"],
            &rates,
            |row: &mut Option<(i64,)>, _| row.get_or_insert((0,)).0 += 1,
        )
        .await?;
        let table = tx.table("view_producers");
        fold(
            tx.conn(),
            &table,
            &["producer", "producer_version"],
            &["n", "last_position", "last_recorded_at"],
            &producers,
            |row: &mut Option<(i64, i64, i64)>, &(position, at)| {
                let n = row.map_or(0, |r| r.0);
                *row = Some((n + 1, position, at));
            },
        )
        .await?;
        let table = tx.table("view_dead_letters");
        fold(
            tx.conn(),
            &table,
            &["processor", "error_class"],
            &["n", "last_error", "last_topic", "last_at"],
            &dead,
            |row: &mut Option<(i64, String, String, i64)>, (error, topic, at)| {
                let n = row.as_ref().map_or(0, |r| r.0);
                *row = Some((n + 1, error.clone(), topic.clone(), *at));
            },
        )
        .await?;
        Ok(())
    }
}

/// `GET /v1/views/health` parameters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HealthQuery {
    /// Minutes of event rates up to now (1..=1440, default 60).
    #[param(minimum = 1, maximum = 1440)]
    pub minutes: Option<i64>,
    /// Read-your-writes (handled by the API).
    #[serde(default, deserialize_with = "crate::views::bounded")]
    #[param(minimum = 0, maximum = 9007199254740991.0)]
    pub min_position: Option<u64>,
}

/// Event rates over the last minutes, dead letters, producers.
pub async fn query(db: &Db, q: &HealthQuery) -> Result<Value, ProjectionError> {
    let minutes = q.minutes.unwrap_or(60);
    if !(1..=1440).contains(&minutes) {
        return Err(ProjectionError::BadQuery(
            "minutes must be within 1..=1440".into(),
        ));
    }
    let since = bucket(now_micros(), MINUTE) - (minutes - 1) * MINUTE;
    let rates = sqlx::query(
        "SELECT minute, event_type, n FROM view_event_rate WHERE minute >= $1 ORDER BY minute, event_type",
    )
    .bind(since)
    .fetch_all(db.pool())
    .await?;
    let dead =
        sqlx::query("SELECT * FROM view_dead_letters ORDER BY n DESC, processor, error_class")
            .fetch_all(db.pool())
            .await?;
    let producers = sqlx::query("SELECT * FROM view_producers ORDER BY producer, producer_version")
        .fetch_all(db.pool())
        .await?;
    let times = |m, keys: &[&str]| Value::Object(with_times(m, keys));
    Ok(json!({
        "since": super::time(since),
        "event_rate": rates.iter().map(|r| times(row_json(r), &["minute"])).collect::<Vec<_>>(),
        "dead_letters": dead.iter().map(|r| times(row_json(r), &["last_at"])).collect::<Vec<_>>(),
        "producers": producers.iter().map(|r| times(row_json(r), &["last_recorded_at"])).collect::<Vec<_>>(),
    }))
}
