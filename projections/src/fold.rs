//! Set-based writes for a page of events: a view turns its page into changes per row, and
//! [`fold`] reads the rows the page touches in one statement, applies the changes in log
//! order in memory, and writes the changed rows back in one statement (per few hundred
//! rows). Because the changes are applied one by one in log order, starting from the
//! stored row, the result is the same bit for bit (floating-point sums included) whatever
//! the page size: a view folded a page at a time equals the same view folded one event at
//! a time.
//!
//! The SQL is what PostgreSQL and SQLite both read: row values compared with `IN (VALUES
//! …)`, multi-row `INSERT … ON CONFLICT … DO UPDATE SET col = excluded.col`, and `RETURNING`
//! after `ON CONFLICT DO NOTHING`. The runner's transaction holds the view's checkpoint
//! lock, so no other writer changes these rows between the read and the write.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Row};

use crate::ProjectionError;

/// A query on the views' database, being bound.
pub(crate) type AnyQuery<'q> = Query<'q, Any, AnyArguments<'q>>;

/// Rows written or read per statement (parameters stay far below both databases' limits).
const ROWS_PER_STATEMENT: usize = 200;

/// A row's columns, in the order of the column names given alongside: bound into a
/// statement, read back from a result row.
pub(crate) trait Columns: Sized {
    /// Binds the columns, in order.
    fn bind<'q>(&self, q: AnyQuery<'q>) -> AnyQuery<'q>;
    /// Reads the columns from `row`, starting at column `from`.
    fn read(row: &AnyRow, from: usize) -> Result<Self, sqlx::Error>;
}

macro_rules! tuple_columns {
    ($($t:ident $i:tt),+) => {
        impl<$($t),+> Columns for ($($t,)+)
        where
            $($t: for<'q> sqlx::Encode<'q, Any> + for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any> + Clone + Send + 'static),+
        {
            fn bind<'q>(&self, q: AnyQuery<'q>) -> AnyQuery<'q> {
                q$(.bind(self.$i.clone()))+
            }
            fn read(row: &AnyRow, from: usize) -> Result<Self, sqlx::Error> {
                Ok(($(row.try_get::<$t, _>(from + $i)?,)+))
            }
        }
    };
}

tuple_columns!(A 0);
tuple_columns!(A 0, B 1);
tuple_columns!(A 0, B 1, C 2);
tuple_columns!(A 0, B 1, C 2, D 3);
tuple_columns!(A 0, B 1, C 2, D 3, E 4);
tuple_columns!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple_columns!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);

/// `rows` groups of `width` parameters: `($1, $2), ($3, $4), …` for PostgreSQL, `(?, ?),
/// (?, ?), …` for SQLite. SQLite looks a named parameter up by a linear scan, when it
/// parses the statement and again when each value is bound, so thousands of `$n` in one
/// statement cost quadratic time (measured: 11% of the embedded pipeline's CPU); plain `?`
/// are numbered in order at no cost.
fn placeholders(conn: &AnyConnection, rows: usize, width: usize) -> String {
    let numbered = conn.backend_name() != "SQLite";
    let mut out = String::with_capacity(rows * width * 5);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..width {
            if c > 0 {
                out.push_str(", ");
            }
            if numbered {
                out.push('$');
                out.push_str(&(r * width + c + 1).to_string());
            } else {
                out.push('?');
            }
        }
        out.push(')');
    }
    out
}

/// The rows of `table` with these keys (those that exist), each as its key and the
/// columns `values`.
pub(crate) async fn load<'k, K, V>(
    conn: &mut AnyConnection,
    table: &str,
    keys: &[&str],
    values: &[&str],
    wanted: impl IntoIterator<Item = &'k K>,
) -> Result<BTreeMap<K, V>, ProjectionError>
where
    K: Columns + Ord + 'k,
    V: Columns,
{
    let wanted: Vec<&K> = wanted
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let key_list = keys.join(", ");
    let value_list = values.join(", ");
    let mut rows = BTreeMap::new();
    for chunk in wanted.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT {key_list}, {value_list} FROM {table} WHERE ({key_list}) IN (VALUES {})",
            placeholders(conn, chunk.len(), keys.len())
        );
        let mut q = sqlx::query(&sql);
        for k in chunk {
            q = k.bind(q);
        }
        for row in q.fetch_all(&mut *conn).await? {
            rows.insert(K::read(&row, 0)?, V::read(&row, keys.len())?);
        }
    }
    Ok(rows)
}

/// Applies `changes` (row key, change; in log order) to `table`: reads the rows they touch,
/// calls `apply(row, change)` for each in order (`row` is `None` for a row that does not
/// exist yet; leaving it `None` writes nothing), and writes every touched row back.
/// `keys` and `values` name the key and value columns, in the order of `K` and `V`.
pub(crate) async fn fold<K, V, C>(
    conn: &mut AnyConnection,
    table: &str,
    keys: &[&str],
    values: &[&str],
    changes: &[(K, C)],
    mut apply: impl FnMut(&mut Option<V>, &C),
) -> Result<(), ProjectionError>
where
    K: Columns + Ord + Clone,
    V: Columns,
{
    if changes.is_empty() {
        return Ok(());
    }
    let mut rows: BTreeMap<K, Option<V>> = load(
        &mut *conn,
        table,
        keys,
        values,
        changes.iter().map(|(k, _)| k),
    )
    .await?
    .into_iter()
    .map(|(k, v)| (k, Some(v)))
    .collect();
    let key_list = keys.join(", ");
    let value_list = values.join(", ");
    for (key, change) in changes {
        let row = rows.entry(key.clone()).or_insert(None);
        apply(row, change);
    }
    let written: Vec<(&K, &V)> = rows
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
        .collect();
    let updates = values
        .iter()
        .map(|v| format!("{v} = excluded.{v}"))
        .collect::<Vec<_>>()
        .join(", ");
    for chunk in written.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO {table} ({key_list}, {value_list}) VALUES {} \
             ON CONFLICT ({key_list}) DO UPDATE SET {updates}",
            placeholders(conn, chunk.len(), keys.len() + values.len())
        );
        let mut q = sqlx::query(&sql);
        for (k, v) in chunk {
            q = v.bind(k.bind(q));
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Inserts `rows` into `table` (columns `columns`), skipping those whose key is already
/// there, and returns the indexes (into `rows`) of the rows inserted. A row repeating an
/// earlier row's key in `rows` is not inserted, as one insert per row in order would do.
/// `returning` names the key columns, read back into `K`; `key` gives a row's key.
pub(crate) async fn insert_new<R, K>(
    conn: &mut AnyConnection,
    table: &str,
    columns: &[&str],
    returning: &[&str],
    rows: &[R],
    key: impl Fn(&R) -> K,
) -> Result<Vec<usize>, ProjectionError>
where
    R: Columns,
    K: Columns + Ord,
{
    let mut first: BTreeMap<K, usize> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        first.entry(key(r)).or_insert(i);
    }
    let mut unique: Vec<usize> = first.values().copied().collect();
    unique.sort_unstable();
    let column_list = columns.join(", ");
    let returning_list = returning.join(", ");
    let mut inserted = BTreeSet::new();
    for chunk in unique.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO {table} ({column_list}) VALUES {} ON CONFLICT DO NOTHING RETURNING {returning_list}",
            placeholders(conn, chunk.len(), columns.len())
        );
        let mut q = sqlx::query(&sql);
        for &i in chunk {
            q = rows[i].bind(q);
        }
        for row in q.fetch_all(&mut *conn).await? {
            inserted.insert(K::read(&row, 0)?);
        }
    }
    Ok(unique
        .into_iter()
        .filter(|&i| inserted.contains(&key(&rows[i])))
        .collect())
}

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    use super::placeholders;

    #[tokio::test]
    async fn placeholders_are_numbered_for_postgres_and_plain_for_sqlite() {
        sqlx::any::install_default_drivers();
        let sqlite = sqlx::AnyConnection::connect("sqlite::memory:")
            .await
            .expect("sqlite");
        assert_eq!(placeholders(&sqlite, 2, 2), "(?, ?), (?, ?)");
        let url = std::env::var("INSIGHTS_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let pg = sqlx::AnyConnection::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {url} is required: {e}"));
        assert_eq!(placeholders(&pg, 2, 3), "($1, $2, $3), ($4, $5, $6)");
    }
}
