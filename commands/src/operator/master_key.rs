//! `gen-master-key` and `rotate-master-key`.

use std::io::{self, Write as _};
use std::ops::ControlFlow;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use secrecy::ExposeSecret as _;
use stargazer_keys::{Config, KeyStore, MasterKey, RotationReport};

use super::{Error, data_keys, kek_label};

/// Options of `rotate-master-key`.
#[derive(Debug, clap::Args)]
pub struct RotateArgs {
    /// Print the summary as JSON: {"rewrapped", "already_current", "current_kek_id", "from": {kek id: count}}
    #[arg(long)]
    pub json: bool,
}

/// Prints a new master key on stdout and what to do with it on stderr.
pub fn generate() -> Result<ExitCode, Error> {
    let key = MasterKey::generate();
    let mut out = io::stdout().lock();
    writeln!(out, "{}", key.to_base64().expose_secret())?;
    out.flush()?;
    let _ = writeln!(
        io::stderr(),
        "hint: set it as STARGAZER_MASTER_KEY (or, to replace a key in use, move the old one into STARGAZER_PREVIOUS_MASTER_KEYS and run `stargazer-keys rotate-master-key`)"
    );
    Ok(ExitCode::SUCCESS)
}

/// Rewraps every data key under the current master key, all or nothing, and prints a summary.
pub async fn rotate(config: &Config, args: &RotateArgs) -> Result<ExitCode, Error> {
    let keyring = config.existing_keyring()?;
    if config.database_url.is_none() && !config.db_path.exists() {
        return Err(Error::NoDatabase(config.db_path.clone()));
    }
    let current_kek_id = keyring.current().id().to_string();
    let store = KeyStore::open(config, keyring)
        .await
        .map_err(Error::Rotation)?;
    let bar = progress_bar("rewrapping data keys");
    let progress = bar.clone();
    let outcome = store
        .rotate(move |done, total| {
            progress.set_length(total);
            progress.set_position(done);
            ControlFlow::Continue(())
        })
        .await;
    bar.finish_and_clear();
    let report = outcome.map_err(Error::Rotation)?;

    let summary = if args.json {
        json_summary(&report, &current_kek_id)
    } else {
        text_summary(
            &report,
            &current_kek_id,
            !config.previous_master_keys.is_empty(),
        )
    };
    let mut out = io::stdout().lock();
    writeln!(out, "{summary}")?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// A bar on stderr, headed `what`; indicatif hides it when stderr is not a terminal.
pub(super) fn progress_bar(what: &str) -> ProgressBar {
    let style = ProgressStyle::with_template(&format!(
        "{what} {{bar:40.cyan/blue}} {{pos}}/{{len}} ({{eta}} left)"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(style)
}

fn text_summary(
    report: &RotationReport,
    current_kek_id: &str,
    previous_configured: bool,
) -> String {
    let current = kek_label(current_kek_id);
    let mut lines = Vec::new();
    if report.rewrapped() > 0 {
        let from: Vec<String> = report
            .rewrapped_from
            .iter()
            .map(|(kek_id, rows)| format!("{rows} from {}", kek_label(kek_id)))
            .collect();
        lines.push(format!(
            "Rewrapped {} under {current}: {}.",
            data_keys(report.rewrapped()),
            from.join(", ")
        ));
        lines.push(format!(
            "{} already under {current}.",
            were(report.already_current)
        ));
    } else if report.already_current > 0 {
        lines.push(format!(
            "Nothing to rewrap: {} already under {current}.",
            were(report.already_current)
        ));
    } else {
        lines.push("There are no data keys yet: nothing to rewrap.".to_owned());
    }
    if previous_configured {
        lines.push(
            "STARGAZER_PREVIOUS_MASTER_KEYS can now be emptied: no data key needs an old master key any more."
                .to_owned(),
        );
    }
    lines.join("\n")
}

/// "1 data key was", "2 data keys were".
fn were(count: u64) -> String {
    let verb = if count == 1 { "was" } else { "were" };
    format!("{} {verb}", data_keys(count))
}

fn json_summary(report: &RotationReport, current_kek_id: &str) -> String {
    serde_json::json!({
        "rewrapped": report.rewrapped(),
        "already_current": report.already_current,
        "current_kek_id": current_kek_id,
        "from": report.rewrapped_from,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> RotationReport {
        RotationReport {
            rewrapped_from: [("aaaa".to_owned(), 2), (String::new(), 1)].into(),
            already_current: 1,
        }
    }

    #[test]
    fn text_summary_names_each_old_key_the_current_key_and_the_next_step() {
        assert_eq!(
            text_summary(&report(), "cccc", true),
            "Rewrapped 3 data keys under master key cccc: 1 from the original bot's master key, 2 from master key aaaa.\n\
             1 data key was already under master key cccc.\n\
             STARGAZER_PREVIOUS_MASTER_KEYS can now be emptied: no data key needs an old master key any more."
        );
    }

    #[test]
    fn json_summary_has_the_documented_fields() {
        let value: serde_json::Value =
            serde_json::from_str(&json_summary(&report(), "cccc")).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "rewrapped": 3,
                "already_current": 1,
                "current_kek_id": "cccc",
                "from": {"aaaa": 2, "": 1},
            })
        );
    }
}
