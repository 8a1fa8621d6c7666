//! `GET /runbooks?limit=50` latency with 10,000 runbooks stored, on SQLite and on
//! PostgreSQL, against `GET /healthz` (the same socket, no database) as the baseline.

use crate::server::Server;
use crate::table::{median, ms, thousands, Row};
use anyhow::Context;
use runbook_core::{Actor, Config, Service};
use runbook_domain::Role;
use serde_json::json;
use std::time::{Duration, Instant};

const RUNBOOKS: usize = 10_000;
const REQUESTS: usize = 200;
/// Requests sent before timing starts (connection set-up, caches).
const WARM_UP: usize = 10;
const TARGET_MS: f64 = 5.0;

/// The SQLite row, and the PostgreSQL one (which needs a server: `RUNBOOK_TEST_POSTGRES_URL`).
pub async fn run() -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    let sqlite = Service::open(Config::from_data_dir(dir.path())).await?;
    let mut rows = vec![row("SQLite", list_latency(&sqlite).await?)];
    drop(sqlite);

    let database = ScratchDatabase::create().await?;
    let postgres = Service::open(database.config(&dir.path().join("pg"))).await;
    let latency = match postgres {
        Ok(service) => list_latency(&service).await,
        Err(error) => Err(error.into()),
    };
    database.drop().await;
    rows.push(row("PostgreSQL", latency?));
    Ok(rows)
}

/// A database of its own on the PostgreSQL server `RUNBOOK_TEST_POSTGRES_URL` names.
pub(crate) struct ScratchDatabase {
    admin: sqlx::PgPool,
    name: String,
    url: String,
}

impl ScratchDatabase {
    pub(crate) async fn create() -> anyhow::Result<ScratchDatabase> {
        let base_url = std::env::var("RUNBOOK_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
        let name = format!("rbs_bench_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(&base_url).await.context(
            "PostgreSQL is needed for the PostgreSQL figures (RUNBOOK_TEST_POSTGRES_URL)",
        )?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await?;
        let url = replace_database(&base_url, &name);
        Ok(ScratchDatabase { admin, name, url })
    }

    /// Settings for a service on this database, its local state in `data_dir`.
    pub(crate) fn config(&self, data_dir: &std::path::Path) -> Config {
        Config {
            database_url: Some(self.url.clone()),
            ..Config::from_data_dir(data_dir)
        }
    }

    pub(crate) async fn drop(self) {
        let _ = sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&self.admin)
            .await;
    }
}

fn row(database: &str, (healthz, list): (Duration, Duration)) -> Row {
    Row {
        benchmark: format!(
            "GET /runbooks?limit=50, {} runbooks, {database} (median)",
            thousands(RUNBOOKS)
        ),
        measured: ms(list),
        baseline_name: "GET /healthz".to_string(),
        baseline: ms(healthz),
        ratio: list.as_secs_f64() / healthz.as_secs_f64(),
        target: format!("≤ {TARGET_MS} ms"),
        met: list.as_secs_f64() * 1000.0 <= TARGET_MS,
    }
}

/// (GET /healthz, GET /runbooks?limit=50) medians over a real socket with RUNBOOKS stored.
async fn list_latency(service: &Service) -> anyhow::Result<(Duration, Duration)> {
    let actor = Actor::system();
    for i in 0..RUNBOOKS {
        service
            .create_runbook(
                &actor,
                json!({
                    "name": format!("Runbook {i:05}"),
                    "description": "Restart the service and check its health",
                    "tags": [format!("team-{}", i % 20)],
                    "blocks": [{"id": "a", "kind": "command", "script": "systemctl restart x"}]
                }),
            )
            .await?;
    }
    let server = Server::start(service, Role::Viewer).await?;
    let time = |path: &'static str| {
        let server = &server;
        async move {
            let mut samples = Vec::with_capacity(REQUESTS);
            for i in 0..WARM_UP + REQUESTS {
                let start = Instant::now();
                server.fetch(path).await?;
                if i >= WARM_UP {
                    samples.push(start.elapsed());
                }
            }
            Ok::<_, anyhow::Error>(median(&samples))
        }
    };
    let baseline = time("/healthz").await?;
    let list = time("/runbooks?limit=50").await?;
    Ok((baseline, list))
}

/// `url` with its database name replaced by `database`, query string kept.
fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = match base.rfind('/') {
        Some(slash) if slash > base.find("://").map_or(0, |i| i + 2) => &base[..slash],
        _ => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::replace_database;

    #[test]
    fn replaces_only_the_database_name() {
        assert_eq!(
            replace_database("postgres://u@h:5432/test?sslmode=disable", "b"),
            "postgres://u@h:5432/b?sslmode=disable"
        );
        assert_eq!(replace_database("postgres://u@h", "b"), "postgres://u@h/b");
    }
}
