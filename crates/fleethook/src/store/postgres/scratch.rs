//! Throwaway databases for tests: each test gets a database of its own on the test server
//! (`CREATE DATABASE fh_<random>`), dropped when the guard goes, so tests run in parallel
//! without seeing each other's rows.

use std::str::FromStr;

use anyhow::Context;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// The variable naming the server tests use, and its default (what `.ci/run` starts).
pub const TEST_URL_VAR: &str = "FLEETHOOK_TEST_POSTGRES_URL";
pub const DEFAULT_TEST_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The URL of the server tests use: `FLEETHOOK_TEST_POSTGRES_URL`, else the default.
pub fn test_server_url() -> String {
    std::env::var(TEST_URL_VAR)
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_TEST_URL.to_string())
}

/// A fresh database that is dropped (with any connections still open to it) on drop.
pub struct ScratchDatabase {
    server_url: String,
    name: String,
    url: String,
}

impl ScratchDatabase {
    /// Creates a fresh database on the test server. Fails, naming the URL and how to fix it,
    /// when the server does not answer: a test on Postgres must fail then, never skip.
    pub async fn create() -> anyhow::Result<ScratchDatabase> {
        Self::create_on(&test_server_url()).await
    }

    /// Creates a fresh database on the server `server_url` names (its database part is only
    /// used to connect); the benchmarks use it so a run never sees an earlier run's rows.
    pub async fn create_on(server_url: &str) -> anyhow::Result<ScratchDatabase> {
        let server_url = server_url.to_string();
        let name = format!("fh_{}", uuid::Uuid::new_v4().simple());
        let mut admin = connect(&server_url).await?;
        // template0 and UTF8 whatever the server's default: bodies are UTF-8 text.
        sqlx::query(&format!(
            "CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0"
        ))
        .execute(&mut admin)
        .await
        .with_context(|| format!("cannot create a test database on {server_url}"))?;
        let _ = admin.close().await;
        let url = with_database(&server_url, &name);
        Ok(ScratchDatabase {
            server_url,
            name,
            url,
        })
    }

    /// The `postgres://` URL of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        // Drop may run inside a runtime that is shutting down; a thread with a runtime of its
        // own can always finish the statement.
        let (server_url, name) = (self.server_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut admin = connect(&server_url).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await?;
                let _ = admin.close().await;
                anyhow::Ok(())
            })
        })
        .join();
        if let Ok(Err(err)) = dropped {
            eprintln!("could not drop test database {}: {err:#}", self.name);
        }
    }
}

async fn connect(server_url: &str) -> anyhow::Result<sqlx::PgConnection> {
    let options = PgConnectOptions::from_str(server_url)
        .with_context(|| format!("not a Postgres URL: {server_url}"))?;
    options.connect().await.with_context(|| {
        format!(
            "PostgreSQL does not answer at {server_url}: start it (.ci/run does) or set \
             {TEST_URL_VAR} to a server where the user may create databases"
        )
    })
}

/// The same server URL naming database `name` instead (user, host, port and query kept).
fn with_database(server_url: &str, name: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (server_url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    format!("{}/{name}{query}", &base[..authority_end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_replaces_the_path_and_keeps_the_rest() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "fh_x"),
            "postgres://postgres@127.0.0.1:5432/fh_x"
        );
        assert_eq!(
            with_database("postgresql://u:p@db/main?sslmode=disable", "fh_x"),
            "postgresql://u:p@db/fh_x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://localhost", "fh_x"),
            "postgres://localhost/fh_x"
        );
    }
}
