//! Writing a batch of events: one statement shape whatever the batch size, every column's type
//! stated, so no batch can fix a parameter's type for the next (a NULL first once made PostgreSQL
//! type a float column as text and refuse every later batch).

use super::EventRecord;
use sqlx::{AnyPool, PgPool};

/// The event table's columns, in the order both statements supply them.
macro_rules! insert_into {
    () => {
        "INSERT INTO velochat_events (ts_ms, request_id, session_hash, route, intent, source, fallback_reason, \
         handoff_reason, latency_ms, upstream_ms, prompt_tokens, completion_tokens, cached_tokens, cost_usd, \
         confidence, repeat_question, first_reply, model, site) "
    };
}

/// PostgreSQL: the whole batch as 19 typed arrays, unnested server-side in one statement.
const INSERT_POSTGRES: &str = concat!(
    insert_into!(),
    "SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
     $8::text[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[], $14::float8[], \
     $15::float8[], $16::bigint[], $17::bigint[], $18::text[], $19::text[])"
);

/// SQLite: a fixed block of rows per statement; a short block is padded with NULL rows, which the
/// `WHERE` leaves out. One statement shape, one round trip to the connection's thread per block.
const SQLITE_ROWS: usize = 32;
const COLUMNS: usize = 19;

fn insert_sqlite_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            concat!(insert_into!(), "SELECT * FROM (VALUES {}) WHERE column1 IS NOT NULL"),
            placeholder_rows(COLUMNS, SQLITE_ROWS)
        )
    })
}

/// `rows` rows of `columns` `?` placeholders, for a fixed-size `VALUES` block.
pub(super) fn placeholder_rows(columns: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

/// The `site` column: `default` for an event of no other site.
fn site_of(event: &EventRecord) -> &str {
    event.site.as_deref().unwrap_or(crate::domain::SiteId::DEFAULT)
}

fn column<T>(events: &[EventRecord], pick: impl Fn(&EventRecord) -> T) -> Vec<T> {
    events.iter().map(pick).collect()
}

pub(super) async fn insert_postgres(pool: &PgPool, events: &[EventRecord]) -> Result<(), sqlx::Error> {
    sqlx::query(INSERT_POSTGRES)
        .bind(column(events, |e| e.ts_ms))
        .bind(column(events, |e| e.request_id.clone()))
        .bind(column(events, |e| e.session_hash.clone()))
        .bind(column(events, |e| e.route.clone()))
        .bind(column(events, |e| e.intent.clone()))
        .bind(column(events, |e| e.source.clone()))
        .bind(column(events, |e| e.fallback_reason.clone()))
        .bind(column(events, |e| e.handoff_reason.clone()))
        .bind(column(events, |e| e.latency_ms))
        .bind(column(events, |e| e.upstream_ms))
        .bind(column(events, |e| e.prompt_tokens))
        .bind(column(events, |e| e.completion_tokens))
        .bind(column(events, |e| e.cached_tokens))
        .bind(column(events, |e| e.cost_usd))
        .bind(column(events, |e| e.confidence))
        .bind(column(events, |e| i64::from(e.repeat_question)))
        .bind(column(events, |e| i64::from(e.first_reply)))
        .bind(column(events, |e| e.model.clone()))
        .bind(column(events, |e| site_of(e).to_owned()))
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn insert_sqlite(pool: &AnyPool, events: &[EventRecord]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for block in events.chunks(SQLITE_ROWS) {
        let mut query = sqlx::query(insert_sqlite_sql());
        for e in block {
            query = query
                .bind(e.ts_ms)
                .bind(e.request_id.as_str())
                .bind(e.session_hash.as_str())
                .bind(e.route.as_str())
                .bind(e.intent.as_deref())
                .bind(e.source.as_str())
                .bind(e.fallback_reason.as_deref())
                .bind(e.handoff_reason.as_deref())
                .bind(e.latency_ms)
                .bind(e.upstream_ms)
                .bind(e.prompt_tokens)
                .bind(e.completion_tokens)
                .bind(e.cached_tokens)
                .bind(e.cost_usd)
                .bind(e.confidence)
                .bind(i64::from(e.repeat_question))
                .bind(i64::from(e.first_reply))
                .bind(e.model.as_deref())
                .bind(site_of(e));
        }
        for _ in block.len()..SQLITE_ROWS {
            for _ in 0..COLUMNS {
                query = query.bind(None::<i64>);
            }
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await
}
