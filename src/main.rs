use std::process::ExitCode;

use clap::Parser;

use sigil::cli::{self, Cli, Command, UsageError};
use sigil::config::{LogSettings, Settings};
use sigil::crypto::rotation;
use sigil::startup::Application;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.is::<UsageError>() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = match cli.settings() {
        Ok(s) => s,
        Err(e) => return Err(UsageError(format!("{e:#}")).into()),
    };
    let log = match cli.command {
        Command::Serve => settings.log.clone(),
        // Management commands log warnings only (such as a newly created master key).
        _ => LogSettings {
            level: std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            ..settings.log.clone()
        },
    };
    sigil::telemetry::init(&log);
    let settings = &settings;
    match cli.command {
        Command::Serve => serve(settings.clone()),
        Command::Migrate => {
            let core = cli::open(settings)?;
            let created =
                rotation::ensure_keys(&core.db, &core.master, sigil::clock::Clock::system().now())?;
            eprintln!(
                "database is up to date; {} signing keys created",
                created.len()
            );
            Ok(())
        }
        Command::User(cmd) => cli::users::run(cmd, settings),
        Command::Client(cmd) => cli::clients::run(cmd, settings),
        Command::Keys(cmd) => cli::keys::run(cmd, settings),
    }
}

#[actix_web::main]
async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings)?;
    app.run_until_stopped().await?;
    tracing::info!("stopped");
    Ok(())
}
