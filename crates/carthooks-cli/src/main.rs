//! `carthooks`: the Carthooks command line, built on the SDK alone.
//!
//! # Design
//!
//! | module | holds |
//! |---|---|
//! | `args` | the grammar (clap derive), every command's `--help` examples, the exit codes |
//! | `config` | profiles (TOML in the platform's config directory) |
//! | `creds` | where secrets live: the OS keyring, or 0600 files only when the user agreed |
//! | `ctx` | what a command starts from: the profile, and a signed-in SDK client |
//! | `login` | `login` (loopback redirect + PKCE, or client credentials), `logout`, `auth status` |
//! | `ops` | one command per API operation, and `api` for any endpoint |
//! | `output` | table / JSON / NDJSON / CSV, and `--jq` over the whole result |
//! | `bulk` | `export` and `import` on the SDK's bulk engine, with progress and resume |
//! | `tail` | `watch tail`: the SDK's watcher printing each change |
//!
//! Rules every command keeps: data on stdout, everything else on stderr;
//! no secret is printed (the SDK's errors and `Debug` hold none, and no
//! command prints a token); errors are one sentence with the server's trace
//! id; exit codes as `args::EXIT_CODES` says. One runtime thread: a command is
//! one user's work, and a current-thread runtime starts in microseconds.

mod args;
mod bulk;
mod config;
mod creds;
mod ctx;
mod error;
mod login;
mod ops;
mod output;
mod tail;

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser as _};

use args::{AuthCommand, Cli, Command, ConfigCommand, WatchCommand};
use ctx::Ctx;
use error::CliError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.verbose, cli.global.quiet);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("carthooks: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let text = e.to_string();
            if !text.is_empty() {
                eprintln!("carthooks: {text}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

/// `-v`: a line per API call (the SDK's call span, closed) and its token
/// events; `-vv` and `-vvv` more of the SDK's. Never a secret: the SDK's
/// spans and events hold none.
fn init_logging(verbose: u8, quiet: bool) {
    // Only the SDK's own targets: its spans and events never hold a secret;
    // the HTTP stack's trace logs are not vetted, so they are never shown.
    let level = match (quiet, verbose) {
        (true, _) | (false, 0) => return,
        (false, 1) => "carthooks=debug,carthooks_watch=info",
        (false, 2) => "carthooks=trace,carthooks_watch=debug",
        (false, _) => "carthooks=trace,carthooks_watch=trace,carthooks_client=trace",
    };
    // A line per API call (its span, closed: operation, status, attempts,
    // trace id, time), and the SDK's events at the level asked for.
    let _ = tracing_subscriber::fmt()
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_writer(std::io::stderr)
        // Plain text: the lines are for reading and for pasting into an issue.
        .with_ansi(false)
        .try_init();
}

async fn run(cli: Cli) -> Result<(), CliError> {
    if let Command::Completions { shell } = cli.command {
        let mut command = Cli::command();
        clap_complete::generate(shell, &mut command, "carthooks", &mut std::io::stdout());
        return Ok(());
    }
    let mut ctx = Ctx::new(cli.global)?;
    match cli.command {
        Command::Login(args) => login::login(&mut ctx, args).await,
        Command::Logout => login::logout(&mut ctx),
        Command::Auth { command } => match command {
            AuthCommand::Status => login::status(&ctx).await,
        },
        Command::Items { command } => ops::items(&ctx, command).await,
        Command::SubItems { command } => ops::sub_items(&ctx, command).await,
        Command::Users { command } => ops::users(&ctx, command).await,
        Command::SubmissionToken(args) => ops::submission_token(&ctx, args).await,
        Command::UploadToken => ops::upload_token(&ctx).await,
        Command::WatchData(args) => ops::watch_data(&ctx, args).await,
        Command::Export(args) => bulk::export(&ctx, args).await,
        Command::Import(args) => bulk::import(&ctx, args).await,
        Command::Watch { command } => match command {
            WatchCommand::Tail {
                target,
                queue,
                filters,
                max,
            } => tail::tail(&ctx, target, queue, filters, max).await,
        },
        Command::Api(args) => ops::api(&ctx, args).await,
        Command::Config { command } => config(&mut ctx, command),
        Command::Completions { .. } => Ok(()),
    }
}

/// `carthooks config set|get|unset|list`.
fn config(ctx: &mut Ctx, command: ConfigCommand) -> Result<(), CliError> {
    let name = ctx.profile_name.clone();
    match command {
        ConfigCommand::Set { key, value } => ctx.config.set(&name, &key, Some(&value)),
        ConfigCommand::Unset { key } => ctx.config.set(&name, &key, None),
        ConfigCommand::Get { key } => match ctx.config.get(&name, &key)? {
            Some(v) => {
                println!("{v}");
                Ok(())
            }
            None => Err(CliError::Other(format!(
                "{key} is not set (profile {name})"
            ))),
        },
        ConfigCommand::List => {
            let value = serde_json::to_value(&ctx.config.file)
                .map_err(|e| CliError::Other(e.to_string()))?;
            ctx.printer()?.print(value)
        }
    }
}
