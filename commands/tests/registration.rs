//! What the bot registers with Discord: checked on the JSON poise builds, with no network.

use serde_json::Value;
use stargazer_keys_commands::bot::{BotData, Error};

fn registration() -> Vec<Value> {
    let commands = stargazer_keys_commands::commands::<BotData, Error>();
    poise::builtins::create_application_commands(&commands)
        .into_iter()
        .map(|command| serde_json::to_value(command).expect("serializable"))
        .collect()
}

fn named<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list:#?}"))
}

fn option_names(node: &Value) -> Vec<&str> {
    node["options"]
        .as_array()
        .map(|options| {
            options
                .iter()
                .map(|o| o["name"].as_str().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

/// Every node of the tree: commands, groups, subcommands and options.
fn walk<'a>(node: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(node);
    if let Some(options) = node["options"].as_array() {
        for option in options {
            walk(option, out);
        }
    }
}

#[test]
fn the_top_level_commands_are_the_designed_ones() {
    let mut names: Vec<String> = registration()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "forget_my_api_keys",
            "list_user_api_keys",
            "pool",
            "pool_key_dms",
            "remove_user_api_key",
            "set_user_api_key",
            "shared_keys"
        ]
    );
}

#[test]
fn pool_has_add_remove_list_unbench_log_limit_and_the_channel_and_server_groups_with_the_same() {
    let commands = registration();
    let pool = named(&commands, "pool");
    assert_eq!(
        option_names(pool),
        [
            "add", "remove", "list", "unbench", "log", "limit", "channel", "server"
        ]
    );
    let options = pool["options"].as_array().unwrap();
    for leaf in ["add", "remove", "list", "unbench", "log", "limit"] {
        assert_eq!(named(options, leaf)["type"], 1, "{leaf} is a subcommand");
    }
    for group in ["channel", "server"] {
        let group = named(options, group);
        assert_eq!(group["type"], 2, "{group} is a subcommand group");
        assert_eq!(
            option_names(group),
            ["add", "remove", "list", "unbench", "log", "limit"]
        );
        for leaf in group["options"].as_array().unwrap() {
            assert_eq!(leaf["type"], 1);
        }
    }
}

#[test]
fn service_and_key_id_options_autocomplete() {
    let commands = registration();
    let set = named(&commands, "set_user_api_key");
    let service = &set["options"][0];
    assert_eq!(service["name"], "service");
    assert_eq!(service["autocomplete"], true);
    assert_eq!(service["required"], true);
    let pool = named(&commands, "pool");
    let remove = named(pool["options"].as_array().unwrap(), "remove");
    assert_eq!(option_names(remove), ["service", "key_id"]);
    assert!(
        remove["options"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["autocomplete"] == true)
    );
}

#[test]
fn every_node_has_a_description_within_discords_limits() {
    let commands = registration();
    let mut nodes = Vec::new();
    for command in &commands {
        walk(command, &mut nodes);
    }
    for node in nodes {
        let description = node["description"].as_str().unwrap_or_default();
        assert!(!description.is_empty(), "no description: {node}");
        assert!(
            description.chars().count() <= 100,
            "description over 100 chars: {description}"
        );
        let name = node["name"].as_str().unwrap();
        assert!(
            name.len() <= 32 && name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{name}"
        );
        if let Some(options) = node["options"].as_array() {
            assert!(options.len() <= 25, "{name} has {} options", options.len());
        }
        if let Some(choices) = node["choices"].as_array() {
            assert!(choices.len() <= 25, "{name} has {} choices", choices.len());
        }
    }
    assert!(commands.len() <= 100);
}

#[test]
fn every_command_and_option_is_described_in_german_and_english_descriptions_are_unchanged() {
    let list = registration();
    let mut nodes = Vec::new();
    for command in &list {
        walk(command, &mut nodes);
    }
    let mut undescribed = Vec::new();
    for node in &nodes {
        let name = node["name"].as_str().unwrap();
        let german = node["description_localizations"]["de"].as_str();
        match german {
            Some(text) if !text.is_empty() && text.chars().count() <= 100 => {
                assert_ne!(
                    Some(text),
                    node["description"].as_str(),
                    "{name}: not translated"
                );
            }
            _ => undescribed.push(name.to_owned()),
        }
        // Names are the same in every language: messages quote them.
        assert!(
            node["name_localizations"]
                .as_object()
                .is_none_or(|m| m.is_empty()),
            "{name}"
        );
    }
    assert!(
        undescribed.is_empty(),
        "no German description: {undescribed:?}"
    );
    assert_eq!(
        named(&list, "set_user_api_key")["description"],
        "Save your own API key for a service; it works for you in every server and DM."
    );
    assert_eq!(
        named(&list, "set_user_api_key")["description_localizations"]["de"],
        "Speichere deinen eigenen API-Schlüssel für einen Dienst; er gilt für dich überall."
    );
}
