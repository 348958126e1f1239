//! Command-line interface.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version,
    about = "Portcullis: a security gateway for AI traffic (LLM APIs, MCP servers, A2A agents)",
    long_about = "Portcullis sits between applications and the AI services they call. It authenticates, \
attributes, inspects, meters and records every exchange.\n\nConfiguration comes from an optional YAML file \
(--config or PORTCULLIS_CONFIG), then PORTCULLIS_* environment variables, then flags. See docs/configuration.md."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// YAML configuration file.
    #[arg(long, global = true, env = "PORTCULLIS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (SQLite database, generated secrets). Overrides `data_dir`.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// Log format: text or json. Overrides `log_format`.
    #[arg(long, global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: admin API, metrics and proxies.
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Manage admin users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Manage API keys and the master encryption key.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Detection policies: list, check a text, test packs, scan JSON lines.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Print the version.
    Version,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// List the built-in policies.
    List,
    /// Check one text; prints the verdict as JSON, exits 1 when blocked.
    Check {
        /// Policy name (repeatable). Default: every built-in policy.
        #[arg(long = "policy", value_name = "NAME")]
        policies: Vec<String>,
        /// Where the text would appear: request, response, tool_call, tool_result,
        /// tool_description, agent_message.
        #[arg(long, default_value = "request")]
        location: String,
        text: String,
    },
    /// Run a pack's examples (a JSON file, or every built-in pack); exits 1 on a failure.
    Test { file: Option<std::path::PathBuf> },
    /// Read JSON lines `{"text": ...}` on stdin; write one verdict per line on stdout.
    Scan {
        #[arg(long = "policy", value_name = "NAME")]
        policies: Vec<String>,
        #[arg(long, default_value = "request")]
        location: String,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Control-plane address, e.g. 127.0.0.1:8080. Overrides `listen` / PORTCULLIS_LISTEN.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Try it without a provider key: add a `demo` group, a fresh key and a `demo`
    /// LLM proxy backed by a built-in mock provider, and print a curl that works.
    #[arg(long)]
    pub demo: bool,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create an admin user. Prints a generated password unless --password-stdin is given.
    Create {
        #[arg(long)]
        username: String,
        /// admin, developer or read_only.
        #[arg(long, default_value = "read_only")]
        role: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password and end their sessions.
    SetPassword {
        #[arg(long)]
        username: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key for a group; the key is printed once.
    Create {
        /// Group name.
        #[arg(long)]
        group: String,
        /// A label for the key.
        #[arg(long)]
        name: String,
        /// Scope to grant (repeatable): llm, mcp, a2a, admin, admin_read. Default: llm, mcp, a2a.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Days until the key expires.
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u32>,
        /// Create the group if it does not exist.
        #[arg(long)]
        create_group: bool,
    },
    /// List API keys (never their secrets).
    List {
        /// Only this group.
        #[arg(long)]
        group: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Print a new random key for a configuration file's `keys:` entry (stores nothing).
    Generate,
    /// Revoke an API key by id or prefix (pcx_XXXXXXXX).
    Revoke { key: String },
    /// Re-encrypt every provider credential under a new master key. Stop the server first.
    RotateMaster {
        /// Read the new key (64 hex characters or base64 of 32 bytes) from this file
        /// instead of generating one. Required when the current key comes from the
        /// environment or the config file.
        #[arg(long, value_name = "FILE")]
        new_key_file: Option<PathBuf>,
    },
}
