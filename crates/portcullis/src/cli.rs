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
    /// MCP tools: scan a server for vulnerabilities.
    #[command(subcommand)]
    Mcp(McpCommand),
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

#[derive(Debug, Subcommand)]
pub enum McpCommand {
    /// Connect to an MCP server as a client, list its tools, resources and prompts,
    /// and report security findings.
    #[command(
        long_about = "Connect to an MCP server as a client, list its tools, resources and \
prompts, and report security findings: no authentication, plain HTTP to a non-loopback host, \
poisoned descriptions, dangerous capabilities without annotations, overly permissive schemas, \
tool name collisions and shadowing, secrets or injections in resources.\n\n\
Targets: a Streamable HTTP URL (`portcullis mcp scan http://host/mcp`) or a stdio server \
command after `--` (`portcullis mcp scan -- npx -y some-server`).\n\n\
Exit codes: 0 no finding at or above --fail-on, 1 at least one, 2 connection or protocol error."
    )]
    Scan(McpScanArgs),
}

#[derive(Debug, Args)]
pub struct McpScanArgs {
    /// Streamable HTTP endpoint of the server, e.g. http://127.0.0.1:8000/mcp.
    #[arg(value_name = "URL", required_unless_present = "command")]
    pub url: Option<String>,
    /// A stdio server to start: the command and its arguments, after `--`.
    #[arg(last = true, value_name = "COMMAND", conflicts_with = "url")]
    pub command: Vec<String>,
    /// A header sent with every HTTP request, `Name: value` (repeatable). Values are never printed.
    #[arg(long = "header", short = 'H', value_name = "HEADER")]
    pub headers: Vec<String>,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = portcullis_mcp_scan::DEFAULT_TIMEOUT_SECS, value_name = "SECS")]
    pub timeout: u64,
    /// Largest message accepted from the server, in bytes.
    #[arg(long, default_value_t = portcullis_mcp_scan::DEFAULT_MAX_MESSAGE_BYTES, value_name = "BYTES")]
    pub max_message_bytes: usize,
    /// Pages read per list (tools, resources, prompts).
    #[arg(long, default_value_t = portcullis_mcp_scan::DEFAULT_MAX_PAGES, value_name = "N")]
    pub max_pages: usize,
    /// Text resources read and scanned (0: none).
    #[arg(long, default_value_t = portcullis_mcp_scan::DEFAULT_MAX_RESOURCES, value_name = "N")]
    pub max_resources: usize,
    /// Exit 1 when a finding is at or above this severity: info, low, medium, high, critical.
    #[arg(long, default_value = "high", value_name = "SEVERITY")]
    pub fail_on: String,
    /// One JSON document (server, counts, findings) instead of a table.
    #[arg(long)]
    pub json: bool,
}
