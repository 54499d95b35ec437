//! `rekey`: a new data key for every user and pool, every value sealed again under it (the
//! way out of a leaked master key; see [`KeyVault::rekey`]).

use std::ops::ControlFlow;
use std::process::ExitCode;

use serde_json::json;
use stargazer_keys::{Config, KeyVault, RekeyReport};

use super::master_key::progress_bar;
use super::{Error, open_vault, print};

/// Options of `rekey`.
#[derive(Debug, clap::Args)]
pub struct RekeyArgs {
    /// Print the counts as JSON: {"owners", "values_moved", "already_moved", "unreadable", "unreadable_by_hash", "checkpoint_blocked"}
    #[arg(long)]
    json: bool,
}

/// Runs `rekey` with a progress bar on stderr, and prints a summary.
pub async fn run(config: &Config, args: &RekeyArgs) -> Result<ExitCode, Error> {
    let vault: KeyVault = open_vault(config).await?;
    let bar = progress_bar("giving owners new data keys");
    let report = vault
        .rekey(|done, total| {
            bar.set_length(total);
            bar.set_position(done);
            ControlFlow::Continue(())
        })
        .await;
    bar.finish_and_clear();
    let report = report?;
    print(&if args.json {
        json!({
            "owners": report.owners,
            "values_moved": report.values_moved,
            "already_moved": report.already_moved,
            "unreadable": report.unreadable,
            "unreadable_by_hash": report.unreadable_by_hash,
            "checkpoint_blocked": report.checkpoint_blocked,
        })
        .to_string()
    } else {
        summary(&report)
    })
}

fn summary(report: &RekeyReport) -> String {
    if report.owners == 0 {
        return "There are no data keys: nothing to rekey.".to_owned();
    }
    let mut lines = vec![format!(
        "Gave {} a new data key and sealed {} again under it ({} already {}).",
        count(report.owners, "owner", "owners"),
        count(report.values_moved, "value", "values"),
        report.already_moved,
        if report.already_moved == 1 {
            "was"
        } else {
            "were"
        },
    )];
    lines.push(
        "The old data keys are erased: no copy of the key database from before this run opens a current value, whatever master key it was under."
            .to_owned(),
    );
    if report.unreadable > 0 {
        lines.push(format!(
            "{} open under neither the old nor the new key and {} left as {}:",
            match report.unreadable {
                1 => "1 value does".to_owned(),
                n => format!("{n} values do"),
            },
            if report.unreadable == 1 {
                "was"
            } else {
                "were"
            },
            if report.unreadable == 1 {
                "it is"
            } else {
                "they are"
            },
        ));
        for (hash, n) in &report.unreadable_by_hash {
            lines.push(format!("  {hash}: {}", count(*n, "value", "values")));
        }
    }
    if report.checkpoint_blocked {
        lines.push(
            "An erased old key may stay for now, wrapped under the master key: in SQLite's write-ahead log, which other connections kept busy (every process retries the checkpoint), or in PostgreSQL's table pages, which could not be vacuumed (autovacuum prunes them; `stargazer-keys doctor` says why)."
                .to_owned(),
        );
    }
    lines.join("\n")
}

fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_what_moved_and_names_unreadable_hashes() {
        let report = RekeyReport {
            owners: 3,
            values_moved: 5,
            already_moved: 1,
            unreadable: 1,
            unreadable_by_hash: [("stargazer:user_api_keys:7".to_owned(), 1)].into(),
            checkpoint_blocked: false,
        };
        let text = summary(&report);
        assert!(text.starts_with(
            "Gave 3 owners a new data key and sealed 5 values again under it (1 already was)."
        ));
        assert!(text.contains("1 value does open under neither"), "{text}");
        assert!(
            text.contains("  stargazer:user_api_keys:7: 1 value"),
            "{text}"
        );
        assert!(!text.contains("write-ahead"));
    }
}
