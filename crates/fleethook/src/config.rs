//! Configuration: command-line flags over environment over an optional `fleethook.toml` over
//! defaults (SPEC section 1). Clap reads flags and environment; this module lays the file and
//! the defaults underneath.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use serde::Deserialize;

/// Settings that flags or environment may give; `None` means "not given at this layer".
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// HTTP listen address.
    #[arg(long, env = "FLEETHOOK_LISTEN")]
    pub listen: Option<String>,
    /// `sqlite://PATH` (embedded, one node) or `postgres://…`.
    #[arg(long, env = "FLEETHOOK_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The default application's management token (generated on first start when unset).
    #[arg(long, env = "FLEETHOOK_MANAGEMENT_TOKEN")]
    pub management_token: Option<String>,
    /// Allow callback URIs on loopback and private ranges.
    #[arg(long, env = "FLEETHOOK_ALLOW_PRIVATE_CALLBACKS", num_args = 0..=1, default_missing_value = "true")]
    pub allow_private_callbacks: Option<bool>,
    /// Speed of the platform clock: 3600 makes an hour pass in a second.
    #[arg(long, env = "FLEETHOOK_TIME_SCALE")]
    pub time_scale: Option<f64>,
    /// Simulated vehicles to create at start (idempotent across restarts).
    #[arg(long, env = "FLEETHOOK_SIMULATED_VEHICLES")]
    pub simulated_vehicles: Option<u32>,
    /// How long a node owns a delivery it claimed, in real seconds (at least 20): after a node
    /// dies, others send its deliveries in flight again once this has passed.
    #[arg(long, env = "FLEETHOOK_DELIVERY_LEASE_SECONDS")]
    pub delivery_lease_seconds: Option<u64>,
    /// Configuration file (default: `fleethook.toml` in the working directory, if present).
    #[arg(long, env = "FLEETHOOK_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The file layer: the same settings as the flags, in snake case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    database_url: Option<String>,
    management_token: Option<String>,
    allow_private_callbacks: Option<bool>,
    time_scale: Option<f64>,
    simulated_vehicles: Option<u32>,
    delivery_lease_seconds: Option<u64>,
}

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: String,
    pub database_url: String,
    pub management_token: Option<String>,
    pub allow_private_callbacks: bool,
    pub time_scale: f64,
    pub simulated_vehicles: u32,
    pub delivery_lease_seconds: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            database_url: "sqlite://fleethook.db".into(),
            management_token: None,
            allow_private_callbacks: false,
            time_scale: 1.0,
            simulated_vehicles: 0,
            delivery_lease_seconds: 60,
        }
    }
}

impl ConfigArgs {
    /// Lays flags/environment over the file over the defaults.
    pub fn resolve(&self) -> anyhow::Result<Config> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None if Path::new("fleethook.toml").exists() => read_file(Path::new("fleethook.toml"))?,
            None => FileConfig::default(),
        };
        let defaults = Config::default();
        let config = Config {
            listen: self
                .listen
                .clone()
                .or(file.listen)
                .unwrap_or(defaults.listen),
            database_url: self
                .database_url
                .clone()
                .or(file.database_url)
                .unwrap_or(defaults.database_url),
            management_token: self.management_token.clone().or(file.management_token),
            allow_private_callbacks: self
                .allow_private_callbacks
                .or(file.allow_private_callbacks)
                .unwrap_or(defaults.allow_private_callbacks),
            time_scale: self
                .time_scale
                .or(file.time_scale)
                .unwrap_or(defaults.time_scale),
            simulated_vehicles: self
                .simulated_vehicles
                .or(file.simulated_vehicles)
                .unwrap_or(defaults.simulated_vehicles),
            delivery_lease_seconds: self
                .delivery_lease_seconds
                .or(file.delivery_lease_seconds)
                .unwrap_or(defaults.delivery_lease_seconds),
        };
        if !(config.time_scale.is_finite() && config.time_scale > 0.0) {
            bail!(
                "FLEETHOOK_TIME_SCALE must be a positive number, got {}",
                config.time_scale
            );
        }
        if let Some(token) = &config.management_token {
            if token.trim().is_empty() {
                bail!("FLEETHOOK_MANAGEMENT_TOKEN must not be empty");
            }
        }
        Ok(config)
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read configuration file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid configuration file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleethook.toml");
        std::fs::write(&path, "listen = \"0.0.0.0:9000\"\ntime_scale = 60.0\n").unwrap();
        let args = ConfigArgs {
            time_scale: Some(3600.0),
            config: Some(path),
            ..Default::default()
        };
        let config = args.resolve().unwrap();
        assert_eq!(config.listen, "0.0.0.0:9000");
        assert_eq!(config.time_scale, 3600.0);
        assert_eq!(config.database_url, "sqlite://fleethook.db");
    }

    #[test]
    fn unknown_file_keys_and_bad_scales_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleethook.toml");
        std::fs::write(&path, "listne = \"x\"\n").unwrap();
        let args = ConfigArgs {
            config: Some(path),
            ..Default::default()
        };
        assert!(args.resolve().is_err());
        let args = ConfigArgs {
            time_scale: Some(0.0),
            config: Some(dir.path().join("missing-is-an-error.toml")),
            ..Default::default()
        };
        assert!(args.resolve().is_err());
    }
}
