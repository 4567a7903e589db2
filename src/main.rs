use clap::{Parser, Subcommand};
use std::process::ExitCode;
use velochat::config::Settings;
use velochat::startup::Application;

#[derive(Parser)]
#[command(name = "velochat", version, about = "OpenAI support bot gateway for Wix Chat / Velo")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve,
    /// Exit 0 when the service on VELOCHAT_ADDR answers /healthz (for container health checks).
    Healthcheck,
    /// Print the weekly review from the store named by DATABASE_URL.
    Report {
        /// How far back: 7d, 24h, 30m.
        #[arg(long, default_value = "7d")]
        since: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
        /// The site whose review this is (default: `default`).
        #[arg(long)]
        site: Option<String>,
    },
    /// The knowledge base in the store named by DATABASE_URL.
    Kb {
        #[command(subcommand)]
        command: KbCommand,
    },
    /// Sites (one deployment, many Wix sites) in the store named by DATABASE_URL.
    Sites {
        #[command(subcommand)]
        command: SitesCommand,
    },
}

#[derive(Subcommand)]
enum SitesCommand {
    /// Every site with its name and number of keys.
    List,
    /// Creates a site (or renames one).
    Create {
        /// `[a-z0-9][a-z0-9-]{0,62}`
        id: String,
        #[arg(long)]
        name: String,
    },
    /// Makes a key for the site and prints it (once; only its hash is kept).
    Key {
        id: String,
        /// caller (chat and session routes) or admin (the site's /admin routes and console).
        #[arg(long)]
        role: String,
        #[arg(long)]
        label: Option<String>,
    },
}

#[derive(Subcommand)]
enum KbCommand {
    /// Import documents: a JSON file (`{"documents": [...]}`), a JSON-lines file, or a folder of
    /// Markdown files (first heading = title).
    Import { path: std::path::PathBuf },
    /// Search as the bot searches: the passages a question would get, with their scores.
    Search {
        question: String,
        #[arg(short, long, default_value_t = 5)]
        k: usize,
        /// The visitor's locale (en, fr, es, de).
        #[arg(long)]
        locale: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A `.env` in the working directory fills in what the real environment does not set.
    if let Err(e) = dotenvy::from_path(".env") {
        if !e.not_found() {
            eprintln!("velochat: .env: {e}");
            return ExitCode::from(2);
        }
    }
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    velochat::telemetry::init_logging(&settings);
    let runtime = match velochat::api::server::runtime::build(settings.server.worker_threads) {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    let serving = matches!(command, Command::Serve);
    let result = runtime.block_on(async move {
        match command {
            Command::Serve => Application::build(settings).await?.run_until_stopped().await,
            Command::Healthcheck => velochat::cli::healthcheck(&settings).await,
            Command::Report { since, json, site } => {
                velochat::cli::report(&settings, site.as_deref(), &since, json).await
            }
            Command::Kb { command: KbCommand::Import { path } } => velochat::cli::kb::import(&settings, &path).await,
            Command::Kb { command: KbCommand::Search { question, k, locale } } => {
                velochat::cli::kb::search(&settings, &question, k, locale.as_deref()).await
            }
            Command::Sites { command: SitesCommand::List } => velochat::cli::sites::list(&settings).await,
            Command::Sites { command: SitesCommand::Create { id, name } } => {
                velochat::cli::sites::create(&settings, &id, &name).await
            }
            Command::Sites { command: SitesCommand::Key { id, role, label } } => {
                velochat::cli::sites::key(&settings, &id, &role, label).await
            }
        }
    });
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        // The service reports in its log; a command speaks to the person who typed it, once.
        Err(e) if serving => {
            tracing::error!(error = format!("{e:#}"), "velochat failed");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("velochat: {e:#}");
            ExitCode::FAILURE
        }
    };
    velochat::telemetry::flush_logs();
    code
}
