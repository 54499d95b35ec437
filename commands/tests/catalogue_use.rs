//! The command code holds message ids, never English sentences: every string literal of the
//! code users read (the slash commands, the error handler, the contributor DMs) with two or
//! more words is flagged, outside log lines, panics and attributes. Every message id the code
//! names is in the English catalogue. (The CLI, `operator/`, stays English by design.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The files whose text reaches Discord users.
fn user_facing_files() -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files: Vec<PathBuf> = std::fs::read_dir(src.join("slash"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for name in [
        "error.rs",
        "notices.rs",
        "context.rs",
        "text.rs",
        "localize.rs",
    ] {
        files.push(src.join(name));
    }
    files.sort();
    files
}

/// A string literal of a source file: where it starts, and its text.
struct Literal {
    at: usize,
    text: String,
}

/// The string literals of `source` (plain and raw), outside comments and char literals.
fn literals(source: &str) -> Vec<Literal> {
    let bytes = source.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i = source[i..].find('\n').map_or(bytes.len(), |n| i + n);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = source[i..].find("*/").map_or(bytes.len(), |n| i + n + 2);
            }
            b'\'' => {
                // A char literal ('"', '\'', 'x') or a lifetime ('a): skip the char literal.
                if bytes.get(i + 1) == Some(&b'\\') {
                    i = source[i + 2..]
                        .find('\'')
                        .map_or(bytes.len(), |n| i + 2 + n + 1);
                } else if bytes.get(i + 2) == Some(&b'\'') {
                    i += 3;
                } else {
                    i += 1;
                }
            }
            b'r' if matches!(bytes.get(i + 1), Some(b'"') | Some(b'#'))
                && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric() && bytes[i - 1] != b'_') =>
            {
                let hashes = source[i + 1..].bytes().take_while(|b| *b == b'#').count();
                let open = i + 1 + hashes;
                if bytes.get(open) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close = format!("\"{}", "#".repeat(hashes));
                let end = source[open + 1..]
                    .find(&close)
                    .map_or(bytes.len(), |n| open + 1 + n);
                out.push(Literal {
                    at: i,
                    text: source[open + 1..end].to_owned(),
                });
                i = end + close.len();
            }
            b'"' => {
                let mut j = i + 1;
                while j < bytes.len() && bytes[j] != b'"' {
                    j += if bytes[j] == b'\\' { 2 } else { 1 };
                }
                out.push(Literal {
                    at: i,
                    text: source[i + 1..j.min(bytes.len())].to_owned(),
                });
                i = j + 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// Words of a literal outside its `{...}` placeholders and `\` escapes: runs between spaces
/// with two letters or more (a message id, `pool-added`, is one word).
fn words(text: &str) -> usize {
    let mut plain = String::new();
    let mut depth = 0;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '{' => depth += 1,
            '}' => depth = (depth - 1).max(0),
            '\\' => {
                chars.next();
            }
            c if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    plain
        .split_whitespace()
        .filter(|w| w.chars().filter(|c| c.is_alphabetic()).count() >= 2)
        .count()
}

/// Whether the literal at `at` is an argument of a log line, a panic, or an attribute.
fn exempt(source: &str, at: usize) -> bool {
    let statement_start = source[..at].rfind([';', '{', '}']).map_or(0, |n| n + 1);
    let before = &source[statement_start..at];
    const EXEMPT: &[&str] = &[
        "tracing::",
        "warn!(",
        "info!(",
        "error!(",
        "debug!(",
        "trace!(",
        ".expect(",
        "panic!(",
        "unreachable!(",
        "assert!(",
        "#[",
    ];
    EXEMPT.iter().any(|marker| before.contains(marker))
        || source[..at]
            .lines()
            .last()
            .is_some_and(|line| line.trim_start().starts_with("#["))
}

/// The part of a file before its unit tests.
fn code_of(path: &Path) -> String {
    let source = std::fs::read_to_string(path).unwrap();
    match source.find("#[cfg(test)]") {
        Some(at) => source[..at].to_owned(),
        None => source,
    }
}

#[test]
fn the_command_code_has_no_user_facing_sentences_outside_the_catalogues() {
    let mut found = Vec::new();
    for path in user_facing_files() {
        let source = code_of(&path);
        for literal in literals(&source) {
            if words(&literal.text) >= 2 && !exempt(&source, literal.at) {
                let line = source[..literal.at].matches('\n').count() + 1;
                found.push(format!(
                    "{}:{line}: {:?}",
                    path.file_name().unwrap().to_string_lossy(),
                    literal.text
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "sentences in the command code; put them in locales/*/ and use their ids:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_checker_finds_a_sentence_and_lets_ids_logs_and_markup_pass() {
    let source = r#"
        fn f() {
            let a = voice.t("pool-added", &[]);
            tracing::warn!(user, "could not send the reply");
            let b = format!("• **{}** `{}` {masked}", x, y);
            let c = format!("Your key was saved, {name}.");
            let d = 'x';
            let e = r"a raw sentence here";
        }
    "#;
    let flagged: Vec<String> = literals(source)
        .into_iter()
        .filter(|l| words(&l.text) >= 2 && !exempt(source, l.at))
        .map(|l| l.text)
        .collect();
    assert_eq!(
        flagged,
        ["Your key was saved, {name}.", "a raw sentence here"]
    );
}

/// The ids of the English catalogue.
fn english_ids() -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../locales/en");
    let mut ids = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let source = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in source.lines() {
            if let Some((id, _)) = line.split_once(" =")
                && !id.starts_with(['#', ' ', '-'])
                && !id.is_empty()
            {
                ids.insert(id.to_owned());
            }
        }
    }
    ids
}

/// The files of the core that build sentences from the catalogues.
fn core_files_with_messages() -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../src");
    [
        "messages.rs",
        "vault/error_text.rs",
        "vault/pool.rs",
        "vault/key_use.rs",
    ]
    .iter()
    .map(|file| src.join(file))
    .collect()
}

#[test]
fn every_message_id_the_code_names_is_in_the_english_catalogue() {
    let ids = english_ids();
    let mut missing = Vec::new();
    let mut named = 0;
    for path in user_facing_files()
        .into_iter()
        .chain(core_files_with_messages())
    {
        let source = code_of(&path);
        for literal in literals(&source) {
            // Lower-case segments joined by '-', each starting with a letter (`pool-added`;
            // not a locale such as `es-419`).
            let looks_like_id = literal.text.contains('-')
                && literal.text.split('-').all(|segment| {
                    segment.starts_with(|c: char| c.is_ascii_lowercase())
                        && segment
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                });
            if looks_like_id {
                named += 1;
                if !ids.contains(&literal.text) {
                    missing.push(format!(
                        "{}: {}",
                        path.file_name().unwrap().to_string_lossy(),
                        literal.text
                    ));
                }
            }
        }
    }
    assert!(named > 100, "the code names only {named} message ids");
    assert!(missing.is_empty(), "not in locales/en: {missing:?}");
}
