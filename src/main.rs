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
    let (settings, ignored_env) = match cli.load_settings() {
        Ok(loaded) => (loaded.settings, loaded.ignored_env),
        Err(e) => return Err(UsageError(format!("{e:#}")).into()),
    };
    let log = match cli.command {
        Command::Serve | Command::Demo(_) => settings.log.clone(),
        // Management commands log warnings only (such as a newly created master key).
        _ => LogSettings {
            level: std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            ..settings.log.clone()
        },
    };
    sigil::telemetry::init(&log);
    if !ignored_env.is_empty() {
        tracing::warn!(
            variables = ?ignored_env,
            "ignoring environment variables that name no setting"
        );
    }
    let settings = &settings;
    match cli.command {
        Command::Serve => serve(settings.clone()),
        Command::Migrate => {
            let core = cli::open_to_migrate(settings)?;
            let now = sigil::clock::Clock::system().now();
            let created = rotation::ensure_keys(&core.db, &core.master, now)?;
            for site in [&sigil::web::account::SITE, &sigil::web::console::SITE] {
                core.db
                    .with_conn(|c| site.ensure_client(c, &core.master, settings, now))?;
            }
            eprintln!(
                "database is up to date; {} signing keys created",
                created.len()
            );
            Ok(())
        }
        Command::User(cmd) => cli::users::run(cmd, settings),
        Command::Group(cmd) => cli::groups::run(cmd, settings),
        Command::Client(cmd) => cli::clients::run(cmd, settings),
        Command::Resource(cmd) => cli::resources::run(cmd, settings),
        Command::Keys(cmd) => cli::keys::run(cmd, settings),
        Command::Audit(cmd) => cli::audit::run(cmd, settings),
        Command::Demo(args) => sigil::demo::main(settings.clone(), args),
        Command::Config(cmd) => cli::config::run(cmd, settings),
        Command::Transfer(cmd) => cli::transfer::run(cmd, settings),
    }
}

#[actix_web::main]
async fn serve(settings: Settings) -> anyhow::Result<()> {
    return_large_blocks_to_the_system();
    let app = Application::build(settings)?;
    app.run_until_stopped().await?;
    tracing::info!("stopped");
    Ok(())
}

/// Allocator tuning for a small, long-running server. argon2 takes 19 MiB per password check:
/// glibc would keep such freed blocks in each thread's arena (its mmap threshold grows with
/// them); a fixed threshold maps them fresh and returns them on free, so memory falls back
/// after a burst of sign-ins. Two arenas instead of eight per core keep the many small
/// allocations of a few threads from spreading over many heaps.
fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; it is called before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
