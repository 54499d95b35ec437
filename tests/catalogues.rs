//! The shipped catalogues (`locales/<tag>/*.ftl`): every language has every message English
//! has, with the same placeables, each file is built in, and the override directory of
//! `STARGAZER_LOCALES_DIR` rewords a sentence, adds a language, and is refused when broken.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use fluent_syntax::ast;
use stargazer_keys::i18n::{Locale, Texts, TextsError};

fn locales_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("locales")
}

/// The languages shipped, by directory.
fn languages() -> Vec<String> {
    let mut tags: Vec<String> = std::fs::read_dir(locales_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    tags.sort();
    tags
}

fn files_of(tag: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(locales_dir().join(tag))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ftl"))
        .collect();
    files.sort();
    files
}

/// Every message of a language: its id, and the variables its value and attributes use.
fn messages_of(tag: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut messages = BTreeMap::new();
    for file in files_of(tag) {
        let source = std::fs::read_to_string(&file).unwrap();
        let resource = fluent_syntax::parser::parse(source.as_str())
            .unwrap_or_else(|(_, errors)| panic!("{}: {errors:?}", file.display()));
        for entry in resource.body {
            if let ast::Entry::Message(message) = entry {
                let mut variables = BTreeSet::new();
                if let Some(value) = &message.value {
                    pattern_variables(value, &mut variables);
                }
                for attribute in &message.attributes {
                    pattern_variables(&attribute.value, &mut variables);
                }
                let id = message.id.name.to_owned();
                assert!(
                    messages.insert(id.clone(), variables).is_none(),
                    "{tag}: {id} is defined twice"
                );
            }
        }
    }
    messages
}

fn pattern_variables(pattern: &ast::Pattern<&str>, out: &mut BTreeSet<String>) {
    for element in &pattern.elements {
        if let ast::PatternElement::Placeable { expression } = element {
            expression_variables(expression, out);
        }
    }
}

fn expression_variables(expression: &ast::Expression<&str>, out: &mut BTreeSet<String>) {
    match expression {
        ast::Expression::Inline(inline) => inline_variables(inline, out),
        ast::Expression::Select { selector, variants } => {
            inline_variables(selector, out);
            for variant in variants {
                pattern_variables(&variant.value, out);
            }
        }
    }
}

fn inline_variables(inline: &ast::InlineExpression<&str>, out: &mut BTreeSet<String>) {
    match inline {
        ast::InlineExpression::VariableReference { id } => {
            out.insert(id.name.to_owned());
        }
        ast::InlineExpression::Placeable { expression } => expression_variables(expression, out),
        ast::InlineExpression::FunctionReference { arguments, .. } => {
            for argument in &arguments.positional {
                inline_variables(argument, out);
            }
            for argument in &arguments.named {
                inline_variables(&argument.value, out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_language_has_every_english_message_with_the_same_placeables() {
    let english = messages_of("en");
    assert!(english.len() > 20, "the English catalogue is nearly empty");
    let mut problems = Vec::new();
    for tag in languages().into_iter().filter(|t| t != "en") {
        let other = messages_of(&tag);
        for (id, variables) in &english {
            match other.get(id) {
                None => problems.push(format!("{tag} lacks {id}")),
                Some(theirs) if theirs != variables => problems.push(format!(
                    "{tag}: {id} uses {theirs:?}, English uses {variables:?}"
                )),
                Some(_) => {}
            }
        }
        for id in other.keys().filter(|id| !english.contains_key(*id)) {
            problems.push(format!("{tag} has {id}, which English lacks"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn german_is_shipped_and_every_catalogue_file_is_built_in() {
    assert!(languages().contains(&"de".to_owned()));
    let source =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/i18n.rs")).unwrap();
    for tag in languages() {
        for file in files_of(&tag) {
            let name = file.file_name().unwrap().to_str().unwrap();
            let include = format!("include_str!(\"../locales/{tag}/{name}\")");
            assert!(source.contains(&include), "{tag}/{name} is not built in");
        }
    }
    assert_eq!(
        Texts::builtin().locales(),
        vec!["en".to_owned(), "de".to_owned()]
    );
}

#[test]
fn every_built_in_message_formats_without_errors_or_leftover_ids() {
    // A message that formats to its own id was not found; one with `{$` lacks an argument
    // (every placeable it names is given, as 2).
    let texts = Texts::builtin();
    for tag in languages() {
        let locale = Locale::new(&tag);
        for (id, variables) in messages_of(&tag) {
            let args: Vec<(&str, stargazer_keys::i18n::Arg<'_>)> = variables
                .iter()
                .map(|v| (v.as_str(), 2u32.into()))
                .collect();
            let text = texts.text(&locale, &id, &args);
            assert!(
                !text.is_empty() && text != id,
                "{tag}: {id} came out as {text:?}"
            );
            assert!(
                !text.contains("{$") && !text.contains("{ $"),
                "{tag}: {id}: {text}"
            );
        }
    }
}

#[test]
fn an_override_directory_rewords_a_sentence_and_adds_a_language() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("de")).unwrap();
    std::fs::create_dir_all(dir.path().join("fr")).unwrap();
    std::fs::write(
        dir.path().join("de/mine.ftl"),
        "limit-resets-within-a-day = Morgen geht es weiter.\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("fr/keys.ftl"),
        "key-error-empty = La clé est vide : collez la clé elle-même.\n",
    )
    .unwrap();
    let texts = Texts::load(Some(dir.path())).unwrap();
    let de = Locale::new("de");
    let fr = Locale::new("fr");
    assert_eq!(
        texts.text(&de, "limit-resets-within-a-day", &[]),
        "Morgen geht es weiter."
    );
    // The rest of German is still the shipped German.
    assert_eq!(
        texts.text(&de, "key-error-empty", &[]),
        "Der Schlüssel ist leer: Füge den Schlüssel selbst ein."
    );
    assert_eq!(
        texts.text(&fr, "key-error-empty", &[]),
        "La clé est vide : collez la clé elle-même."
    );
    // What French lacks comes in English, never blank.
    assert_eq!(
        texts.text(&fr, "limit-resets-within-a-day", &[]),
        "It resets within 24 hours."
    );
    assert!(texts.locales().contains(&"fr".to_owned()));
    // A French user in a German server reads French, and English where French has nothing,
    // never German: one reply, one language besides English.
    let french_in_german_server = Locale::discord(Some("fr"), Some("de"));
    assert_eq!(
        texts.text(&french_in_german_server, "limit-resets-within-a-day", &[]),
        "It resets within 24 hours."
    );
}

#[test]
fn a_broken_override_is_refused_with_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("de")).unwrap();
    std::fs::write(
        dir.path().join("de/broken.ftl"),
        "fine = Gut\n\nbroken = { $unclosed\n",
    )
    .unwrap();
    let err = Texts::load(Some(dir.path())).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, TextsError::Syntax { line: 3, .. }), "{text}");
    assert!(text.contains("broken.ftl"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("not a tag")).unwrap();
    let err = Texts::load(Some(dir.path())).unwrap_err();
    assert!(matches!(err, TextsError::NotATag { .. }), "{err}");

    let missing = Texts::load(Some(Path::new("/nonexistent/locales"))).unwrap_err();
    assert!(
        missing.to_string().contains("/nonexistent/locales"),
        "{missing}"
    );
}
