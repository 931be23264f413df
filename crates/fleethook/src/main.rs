//! The `fleethook` binary: a thin shell over the library.

use std::sync::Arc;

use clap::{Parser, Subcommand};
use fleethook::clock::{Clock, ScaledClock};
use fleethook::config::ConfigArgs;
use fleethook::delivery::dispatcher::DispatcherSettings;
use fleethook::model::App;
use fleethook::server::{
    ensure_default_app, open_store, open_store_shared, RunningServer, ServerOptions,
};
use fleethook::simulation::Simulation;

/// mimalloc instead of the system allocator: a delivery allocates and frees many small
/// buffers on several threads (HTTP, JSON, SQLite rows), and glibc's malloc spent about a
/// sixth of the throughput benchmark's CPU on them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "fleethook",
    version,
    about = "Self-hosted webhooks for connected-vehicle data, wire-compatible with Smartcar"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API, triggers, dispatcher and simulator.
    Serve(ConfigArgs),
    /// The five-minute tour: a simulated fleet, one webhook of each kind and a receiver that
    /// prints every delivery, on an accelerated clock.
    Demo(fleethook::demo::DemoArgs),
    /// Run a benchmark scenario and write target/bench/SCENARIO.json.
    Bench(fleethook::bench::BenchArgs),
    /// Manage applications in the configured database.
    Apps {
        #[command(subcommand)]
        command: AppsCommand,
    },
}

#[derive(Subcommand)]
enum AppsCommand {
    /// Add an application and print `{"id","name","managementToken"}` as one JSON line.
    Create {
        /// The application's name.
        name: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FLEETHOOK_LOG")
                .unwrap_or_else(|_| "fleethook=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Demo(args) => fleethook::demo::run(args).await,
        Command::Bench(args) => fleethook::bench::run(args).await,
        Command::Apps {
            command: AppsCommand::Create { name, config },
        } => create_app(name, config).await,
    };
    if let Err(err) = result {
        eprintln!("fleethook: {err:#}");
        std::process::exit(1);
    }
}

async fn serve(args: ConfigArgs) -> anyhow::Result<()> {
    let config = args.resolve()?;
    let store = open_store(&config.database_url).await?;
    let clock = Arc::new(ScaledClock::new(config.time_scale));
    let (app, created) =
        ensure_default_app(&store, config.management_token.as_deref(), clock.now_ms()).await?;
    if created && config.management_token.is_none() {
        println!(
            "Created the default application. Its management token (shown once): {}",
            app.management_token
        );
    }
    let server = RunningServer::start(
        store,
        clock,
        ServerOptions {
            listen: config.listen.clone(),
            allow_private: config.allow_private_callbacks,
            dispatcher: DispatcherSettings {
                lease_ms: i64::try_from(config.delivery_lease_seconds.saturating_mul(1000))
                    .unwrap_or(i64::MAX),
                ..Default::default()
            },
            background_dispatcher: true,
        },
    )
    .await?;
    let simulation =
        Simulation::start(server.state.clone(), &app, config.simulated_vehicles).await?;
    tokio::spawn(simulation.run(server.shutdown_receiver()));
    println!("fleethook listening on {}", server.url());
    println!(
        "dashboard: {}/ (sign in with the management token)",
        server.url()
    );
    tokio::signal::ctrl_c().await?;
    eprintln!("fleethook: stopping");
    server.stop().await;
    Ok(())
}

async fn create_app(name: String, args: ConfigArgs) -> anyhow::Result<()> {
    let name = name.trim().to_string();
    if name.is_empty() || name.chars().count() > 200 {
        anyhow::bail!("the application name must be 1 to 200 characters");
    }
    let config = args.resolve()?;
    // A running `serve` holds the database; adding an application beside it is safe.
    let store = open_store_shared(&config.database_url).await?;
    let app = App {
        id: fleethook::ids::new_id(),
        name,
        management_token: fleethook::ids::new_token("amt_"),
        created_at: fleethook::clock::real_now_ms(),
    };
    store.create_app(&app).await?;
    println!(
        "{}",
        serde_json::json!({"id": app.id, "name": app.name, "managementToken": app.management_token})
    );
    Ok(())
}
