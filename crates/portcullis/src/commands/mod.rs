//! One module per command.

mod keys;
mod mcp;
mod policy;
mod serve;
mod users;

use crate::bootstrap;
use crate::cli::{Cli, Command};
use anyhow::Result;
use std::process::ExitCode;

/// Runs a command; most exit 0 on success, `mcp scan` chooses its own code.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let done = match cli.command {
        Command::Mcp(cmd) => return mcp::run(cmd).await,
        Command::Version => {
            println!("portcullis {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Serve(args) => serve::run(&cli.global, args).await,
        Command::Migrate => {
            let config = bootstrap::load_config(&cli.global, None)?;
            init_logging(&config)?;
            let opened = bootstrap::open(config).await?;
            opened.store.close().await;
            println!("migrations applied");
            Ok(())
        }
        Command::Users(cmd) => users::run(&cli.global, cmd).await,
        Command::Keys(cmd) => keys::run(&cli.global, cmd).await,
        Command::Policy(cmd) => policy::run(cmd),
    };
    done.map(|()| ExitCode::SUCCESS)
}

pub(crate) fn init_logging(config: &portcullis_config::Config) -> Result<()> {
    portcullis_core::telemetry::init(config.log_format, &config.log_level)?;
    Ok(())
}

/// Reads one line from standard input, without the newline.
pub(crate) fn read_stdin_line() -> Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
