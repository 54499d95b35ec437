//! `usage show|reset`: a user's daily count of shared-key uses, per tool.

use std::process::ExitCode;

use serde_json::{Value, json};
use stargazer_keys::human_duration;
use stargazer_keys::{Config, ToolName};

use super::{Error, open_existing_vault, parse_id, print, table};

/// `usage show|reset`.
#[derive(Debug, clap::Subcommand)]
pub enum UsageCommand {
    /// Show a user's shared-key uses per tool: count, daily limit, time to the reset
    ///
    /// Uses of shared keys (pools and the operator's environment, not the user's own keys)
    /// are counted per user and tool for 24 hours (QUOTA_WINDOW says how the window moves).
    /// Without --tool, every tool with a running count is shown. With --json: an array of
    /// objects {"tool", "count", "limit", "resets_in_seconds" (null when no window runs)}.
    Show(ShowArgs),

    /// Reset a user's count for one tool to zero
    ///
    /// Says whether there was a count, and exits 0 either way.
    Reset(ResetArgs),
}

/// Options of `usage show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The user's Discord id
    #[arg(long, value_name = "ID", value_parser = parse_id)]
    user: u64,
    /// Only this tool (default: every tool with a running count)
    #[arg(long, value_name = "TOOL")]
    tool: Option<String>,
    /// Print a JSON array of {"tool", "count", "limit", "resets_in_seconds"}
    #[arg(long)]
    json: bool,
}

/// Options of `usage reset`.
#[derive(Debug, clap::Args)]
pub struct ResetArgs {
    /// The user's Discord id
    #[arg(long, value_name = "ID", value_parser = parse_id)]
    user: u64,
    /// The tool whose count to reset
    #[arg(long, value_name = "TOOL")]
    tool: String,
}

/// Runs a `usage` subcommand.
pub async fn run(config: &Config, command: UsageCommand) -> Result<ExitCode, Error> {
    match command {
        UsageCommand::Show(args) => show(config, &args).await,
        UsageCommand::Reset(args) => reset(config, &args).await,
    }
}

async fn show(config: &Config, args: &ShowArgs) -> Result<ExitCode, Error> {
    let tool = args.tool.as_deref().map(ToolName::new).transpose()?;
    let vault = open_existing_vault(config).await?;
    let usage = vault.default_key_usage(args.user, tool.as_deref()).await?;
    if args.json {
        let usage: Vec<Value> = usage
            .iter()
            .map(|tool| {
                json!({
                    "tool": tool.tool,
                    "count": tool.count,
                    "limit": tool.limit,
                    "resets_in_seconds": tool.resets_in.map(|left| left.as_secs()),
                })
            })
            .collect();
        return print(&Value::from(usage).to_string());
    }
    if usage.is_empty() {
        return print(&format!(
            "User {} has no running count: no shared key used in the current window.",
            args.user
        ));
    }
    let rows: Vec<Vec<String>> = usage
        .into_iter()
        .map(|tool| {
            vec![
                tool.tool.to_string(),
                tool.count.to_string(),
                tool.limit.to_string(),
                tool.resets_in
                    .map_or("not started".to_owned(), human_duration),
            ]
        })
        .collect();
    print(&table(&["TOOL", "USED", "LIMIT", "RESETS IN"], &rows))
}

async fn reset(config: &Config, args: &ResetArgs) -> Result<ExitCode, Error> {
    let tool = ToolName::new(&args.tool)?;
    let vault = open_existing_vault(config).await?;
    let had_count = vault.reset_default_key_usage(args.user, &tool).await?;
    print(&if had_count {
        format!("Reset the {} count of user {} to 0.", args.tool, args.user)
    } else {
        format!(
            "User {} had no {} count; nothing changed.",
            args.user, args.tool
        )
    })
}
