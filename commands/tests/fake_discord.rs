//! The fake Discord of the `testkit` feature, proven against the real serenity client and
//! poise framework with a tiny bot defined here.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use poise::serenity_prelude as serenity;
use serde_json::json;
use stargazer_keys_commands::testkit::{
    Caller, CommandScope, FakeDiscord, FakeError, FollowupKind, SlashCommand, TestBot,
};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Context<'a> = poise::Context<'a, (), Error>;
type ApplicationContext<'a> = poise::ApplicationContext<'a, (), Error>;

const GUILD: u64 = 1_100_000_000_000_000_001;
const CHANNEL: u64 = 1_100_000_000_000_000_002;
const ALICE: u64 = 1_100_000_000_000_000_003;
const BOB: u64 = 1_100_000_000_000_000_004;
/// Every wait on the bot; generous for a loaded 2-core machine, short enough to fail fast.
const WAIT: Duration = Duration::from_secs(10);
/// The bound on a whole test: a broken fixture fails here, never hangs.
const TEST_BUDGET: Duration = Duration::from_secs(60);

// ---- the bot under test ----

/// Answers pong, only to the caller.
#[poise::command(slash_command)]
async fn ping(ctx: Context<'_>) -> Result<(), Error> {
    ctx.send(
        poise::CreateReply::default()
            .content("pong")
            .ephemeral(true),
    )
    .await?;
    Ok(())
}

/// Shared key pools.
#[poise::command(slash_command, subcommands("pool_channel"))]
async fn pool(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// The pool of this channel.
#[poise::command(slash_command, rename = "channel", subcommands("pool_channel_add"))]
async fn pool_channel(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Adds a key to this channel's pool.
#[poise::command(
    slash_command,
    rename = "add",
    required_permissions = "MANAGE_CHANNELS"
)]
async fn pool_channel_add(
    ctx: Context<'_>,
    #[description = "The service"]
    #[autocomplete = "autocomplete_service"]
    service: String,
    #[description = "Daily uses per user"] limit: Option<i64>,
) -> Result<(), Error> {
    let reply = format!(
        "added a {service} key to <#{}> (limit {limit:?})",
        ctx.channel_id()
    );
    ctx.send(poise::CreateReply::default().content(reply).ephemeral(true))
        .await?;
    Ok(())
}

async fn autocomplete_service(
    _ctx: Context<'_>,
    partial: &str,
) -> serenity::CreateAutocompleteResponse {
    let choices = ["openrouter", "brave", "gitea"]
        .into_iter()
        .filter(|s| s.starts_with(partial))
        .map(serenity::AutocompleteChoice::from)
        .collect();
    serenity::CreateAutocompleteResponse::new().set_choices(choices)
}

#[derive(Debug, poise::Modal)]
#[name = "Your API key"]
struct KeyModal {
    #[name = "API key"]
    #[max_length = 100]
    key: String,
}

/// Asks for a key in a poise modal.
#[poise::command(slash_command)]
async fn set_key(ctx: ApplicationContext<'_>) -> Result<(), Error> {
    let Some(modal) =
        poise::execute_modal(ctx, None::<KeyModal>, Some(Duration::from_secs(30))).await?
    else {
        return Ok(());
    };
    let reply = format!("saved a key of {} characters", modal.key.len());
    ctx.send(poise::CreateReply::default().content(reply).ephemeral(true))
        .await?;
    Ok(())
}

/// Asks for a token and a URL in a serenity quick modal, answering the submit itself.
#[poise::command(slash_command)]
async fn set_gitea(ctx: ApplicationContext<'_>) -> Result<(), Error> {
    let modal = serenity::CreateQuickModal::new("Gitea")
        .short_field("Token")
        .short_field("Base URL")
        .timeout(Duration::from_secs(30));
    let Some(submit) = ctx
        .interaction
        .quick_modal(ctx.serenity_context(), modal)
        .await?
    else {
        return Ok(());
    };
    let reply = format!(
        "token of {} characters for {}",
        submit.inputs[0].len(),
        submit.inputs[1]
    );
    let message = serenity::CreateInteractionResponseMessage::new()
        .content(reply)
        .ephemeral(true);
    submit
        .interaction
        .create_response(
            ctx.serenity_context(),
            serenity::CreateInteractionResponse::Message(message),
        )
        .await?;
    ctx.has_sent_initial_response.store(true, Ordering::SeqCst);
    Ok(())
}

/// Asks for a confirmation with a button and waits for the press.
#[poise::command(slash_command)]
async fn forget(ctx: Context<'_>) -> Result<(), Error> {
    let button_id = format!("forget-confirm-{}", ctx.id());
    let buttons = serenity::CreateActionRow::Buttons(vec![
        serenity::CreateButton::new(&button_id)
            .label("Forget")
            .style(serenity::ButtonStyle::Danger),
    ]);
    let reply = ctx
        .send(
            poise::CreateReply::default()
                .content("Forget all your keys?")
                .ephemeral(true)
                .components(vec![buttons]),
        )
        .await?;
    let message = reply.message().await?;
    let press = serenity::ComponentInteractionCollector::new(ctx)
        .message_id(message.id)
        .filter(move |press| press.data.custom_id == button_id)
        .timeout(Duration::from_secs(30))
        .await;
    if let Some(press) = press {
        let update = serenity::CreateInteractionResponseMessage::new()
            .content("Forgotten.")
            .components(vec![]);
        press
            .create_response(
                ctx.serenity_context(),
                serenity::CreateInteractionResponse::UpdateMessage(update),
            )
            .await?;
    }
    Ok(())
}

/// Thinks first, then answers.
#[poise::command(slash_command)]
async fn slow(ctx: Context<'_>) -> Result<(), Error> {
    ctx.defer_ephemeral().await?;
    ctx.say("done thinking").await?;
    Ok(())
}

/// Calls a Discord route the fake does not have.
#[poise::command(slash_command)]
async fn pins(ctx: Context<'_>) -> Result<(), Error> {
    let found = ctx.channel_id().pins(ctx.http()).await;
    let reply = match found {
        Ok(pins) => format!("{} pins", pins.len()),
        Err(e) => format!("could not read the pins: {e}"),
    };
    ctx.send(poise::CreateReply::default().content(reply).ephemeral(true))
        .await?;
    Ok(())
}

/// Sends the caller a direct message, and says ephemerally whether Discord took it.
#[poise::command(slash_command)]
async fn dm_me(ctx: Context<'_>) -> Result<(), Error> {
    let sent = match ctx.author().id.create_dm_channel(ctx).await {
        Ok(channel) => channel
            .id
            .say(ctx, "a secret, in private")
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    let reply = match sent {
        Ok(()) => "sent you a DM".to_owned(),
        Err(e) => format!("could not DM you: {e}"),
    };
    ctx.send(poise::CreateReply::default().content(reply).ephemeral(true))
        .await?;
    Ok(())
}

/// Starts a fresh fake Discord and the bot on it, and waits for its registration in the guild.
async fn start_bot() -> TestBot {
    start_bot_registering(CommandScope::Guild(GUILD)).await
}

/// Starts a fresh fake Discord and the bot on it, registering the commands in `scope`.
async fn start_bot_registering(scope: CommandScope) -> TestBot {
    let fake = FakeDiscord::start().await.expect("start the fake Discord");
    let options = poise::FrameworkOptions {
        commands: vec![
            ping(),
            pool(),
            set_key(),
            set_gitea(),
            forget(),
            slow(),
            pins(),
            dm_me(),
        ],
        ..Default::default()
    };
    TestBot::start_poise(fake, options, (), scope, WAIT).await
}

fn alice() -> Caller {
    Caller::in_guild(ALICE, "alice", GUILD, CHANNEL)
}

/// A serenity client for the fake's REST API alone, without a gateway or a bot.
fn rest_client(fake: &FakeDiscord) -> serenity::Http {
    serenity::HttpBuilder::new(fake.token())
        .proxy(fake.http_url())
        .ratelimiter_disabled(true)
        .build()
}

/// The HTTP status and Discord's JSON error code of a failed REST call.
fn discord_error(error: &serenity::Error) -> Option<(u16, isize)> {
    match error {
        serenity::Error::Http(serenity::HttpError::UnsuccessfulRequest(response)) => {
            Some((response.status_code.as_u16(), response.error.code))
        }
        _ => None,
    }
}

/// Runs a test body under [`TEST_BUDGET`].
async fn bounded(body: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_BUDGET, body)
        .await
        .expect("the test finished within its budget");
}

// ---- the tests ----

#[tokio::test]
async fn the_bot_registers_its_commands_in_the_guild() {
    bounded(async {
        let bot = start_bot().await;
        let registrations = bot.fake.registered_commands();
        assert_eq!(registrations.len(), 1);
        let registration = &registrations[0];
        assert_eq!(registration.scope, CommandScope::Guild(GUILD));
        assert_eq!(
            registration.names(),
            [
                "ping",
                "pool",
                "set_key",
                "set_gitea",
                "forget",
                "slow",
                "pins",
                "dm_me"
            ]
        );

        let pool = registration.command("pool").expect("pool registered");
        assert_eq!(pool["type"], 1);
        assert_eq!(pool["guild_id"], GUILD.to_string());
        assert_eq!(
            pool["application_id"],
            bot.fake.application_id().to_string()
        );
        let channel = &pool["options"][0];
        assert_eq!(
            (channel["name"].as_str(), channel["type"].as_u64()),
            (Some("channel"), Some(2))
        );
        let add = &channel["options"][0];
        assert_eq!(
            (add["name"].as_str(), add["type"].as_u64()),
            (Some("add"), Some(1))
        );
        assert_eq!(add["options"][0]["name"], "service");
        assert_eq!(add["options"][0]["autocomplete"], true);
        assert_eq!(add["options"][0]["required"], true);
        assert_eq!(add["options"][1]["name"], "limit");
        assert_eq!(add["options"][1]["type"], 4);

        let sent = bot.fake.requests();
        assert!(
            !sent.iter().any(|r| r.path.contains("oauth2")),
            "owners are not fetched: {sent:?}"
        );
        assert!(serenity::validate_token(bot.fake.token()).is_ok());
        let put = sent
            .iter()
            .find(|r| r.method == "PUT")
            .expect("a PUT was recorded");
        assert_eq!(
            put.path,
            format!(
                "/api/v10/applications/{}/guilds/{GUILD}/commands",
                bot.fake.application_id()
            )
        );
        bot.stop().await;
    })
    .await;
}

#[tokio::test]
async fn ping_replies_pong_ephemerally() {
    bounded(async {
        let bot = start_bot().await;
        let ping = bot
            .fake
            .slash(&alice(), SlashCommand::new("ping"))
            .await
            .unwrap();
        let reply = ping.callback(WAIT).await.unwrap();
        assert_eq!(reply.kind, 4);
        assert!(reply.is_ephemeral());
        assert_eq!(reply.content(), Some("pong"));
        bot.stop().await;
    })
    .await;
}

#[tokio::test]
async fn ping_works_in_a_dm_when_registered_globally() {
    bounded(async {
        let bot = start_bot_registering(CommandScope::Global).await;
        let dm = Caller::in_dm(ALICE, "alice", 1_100_000_000_000_000_009);
        let ping = bot
            .fake
            .slash(&dm, SlashCommand::new("ping"))
            .await
            .unwrap();
        let reply = ping.callback(WAIT).await.unwrap();
        assert!(reply.is_ephemeral());
        assert_eq!(reply.content(), Some("pong"));
        bot.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_guild_command_cannot_be_invoked_from_a_dm() {
    bounded(async {
        let bot = start_bot().await;
        let dm = Caller::in_dm(ALICE, "alice", 1_100_000_000_000_000_009);
        let fake = std::panic::AssertUnwindSafe(&bot.fake);
        let refused =
            std::panic::catch_unwind(|| fake.slash_payload(&dm, &SlashCommand::new("ping")));
        let message = *refused
            .expect_err("a guild command from a DM panics")
            .downcast::<String>()
            .unwrap();
        assert!(message.contains("registered only in guild"), "{message}");
        bot.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_subcommand_in_a_group_gets_its_options() {
    bounded(async {
        let bot = start_bot().await;
        let admin = alice().with_permissions(serenity::Permissions::MANAGE_CHANNELS);
        let add = SlashCommand::new("pool channel add")
            .option("service", "brave")
            .option("limit", 5);
        let reply = bot
            .fake
            .slash(&admin, add)
            .await
            .unwrap()
            .callback(WAIT)
            .await
            .unwrap();
        assert!(reply.is_ephemeral());
        assert_eq!(
            reply.content(),
            Some(format!("added a brave key to <#{CHANNEL}> (limit Some(5))").as_str())
        );
        bot.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_member_without_the_permission_is_refused() {
    bounded(async {
        let bot = start_bot().await;
        let add = SlashCommand::new("pool channel add").option("service", "brave");
        let reply = bot
            .fake
            .slash(&alice(), add)
            .await
            .unwrap()
            .callback(WAIT)
            .await
            .unwrap();
        // poise's default handler answers a missing permission ephemerally.
        assert!(reply.is_ephemeral(), "{reply:?}");
        assert!(
            reply
                .content()
                .unwrap_or_default()
                .contains("Manage Channels"),
            "{reply:?}"
        );
        bot.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_deferred_reply_is_completed_by_its_first_followup() {
    bounded(async {
        let bot = start_bot().await;
        let slow = bot
            .fake
            .slash(&alice(), SlashCommand::new("slow"))
            .await
            .unwrap();
        let thinking = slow.callback(WAIT).await.unwrap();
        assert!(
            thinking.is_deferred() && thinking.is_ephemeral(),
            "{thinking:?}"
        );
        let done = slow.followups(WAIT, 1).await.unwrap();
        assert_eq!(done[0].content(), Some("done thinking"));
        let message = slow.original_message().unwrap();
        assert_eq!(message["content"], "done thinking");
        assert_eq!(message["flags"], 64, "still ephemeral, no longer loading");
        bot.stop().await;
    })
    .await;
}

#[tokio::test]
async fn autocomplete_answers_with_matching_choices() {
    bounded(async {
        let bot = start_bot().await;
        // poise runs the command's checks for autocomplete too: only an admin gets suggestions.
        let admin = alice().with_permissions(serenity::Permissions::MANAGE_CHANNELS);
        let typing = SlashCommand::new("pool channel add").focused("service", "g");
        let answer = bot
            .fake
            .autocomplete(&admin, typing)
            .await
            .unwrap()
            .callback(WAIT)
            .await
            .unwrap();
        assert_eq!(answer.kind, 8);
        assert_eq!(answer.choices(), [("gitea".to_owned(), json!("gitea"))]);
        bot.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_poise_modal_round_trip_ends_in_an_ephemeral_followup() {
    bounded(async {
        let bot = start_bot().await;
        let command = bot
            .fake
            .slash(&alice(), SlashCommand::new("set_key"))
            .await
            .unwrap();
        let shown = command.callback(WAIT).await.unwrap();
        assert!(shown.is_modal());
        let modal = shown.modal().unwrap();
        assert_eq!(modal.title, "Your API key");
        assert_eq!(modal.inputs.len(), 1);
        assert_eq!(modal.inputs[0].max_length, Some(100));

        let submit = bot
            .fake
            .submit_modal(&alice(), &shown, &["sk-or-secret-value"])
            .await
            .unwrap();
        let ack = submit.callback(WAIT).await.unwrap();
        assert_eq!(ack.kind, 6, "poise acknowledges the submit silently");
        let followups = command.followups(WAIT, 1).await.unwrap();
        assert_eq!(followups[0].kind, FollowupKind::Create);
        assert!(followups[0].is_ephemeral());
        assert_eq!(followups[0].content(), Some("saved a key of 18 characters"));

        // The key reached the bot, and went back to Discord in no request.
        let leaks: Vec<_> = bot
            .fake
            .requests()
            .into_iter()
            .filter(|r| r.contains("sk-or-secret-value"))
            .collect();
        assert!(leaks.is_empty(), "{leaks:?}");
        bot.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_quick_modal_submit_is_answered_directly() {
    bounded(async {
        let bot = start_bot().await;
        let command = bot
            .fake
            .slash(&alice(), SlashCommand::new("set_gitea"))
            .await
            .unwrap();
        let shown = command.callback(WAIT).await.unwrap();
        let inputs: Vec<_> = shown
            .modal()
            .unwrap()
            .inputs
            .into_iter()
            .map(|i| i.custom_id)
            .collect();
        assert_eq!(inputs, ["0", "1"]);

        let submit = bot
            .fake
            .submit_modal(&alice(), &shown, &["tok", "https://git.example"])
            .await
            .unwrap();
        let reply = submit.callback(WAIT).await.unwrap();
        assert_eq!(reply.kind, 4);
        assert!(reply.is_ephemeral());
        assert_eq!(
            reply.content(),
            Some("token of 3 characters for https://git.example")
        );
        bot.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_button_press_updates_the_message() {
    bounded(async {
        let bot = start_bot().await;
        let command = bot
            .fake
            .slash(&alice(), SlashCommand::new("forget"))
            .await
            .unwrap();
        let asked = command.callback(WAIT).await.unwrap();
        assert!(asked.is_ephemeral());
        let button = asked.custom_ids().pop().expect("a button");

        let press = bot
            .fake
            .press_button(&alice(), &command, &button)
            .await
            .unwrap();
        let update = press.callback(WAIT).await.unwrap();
        assert!(update.is_update());
        assert_eq!(update.content(), Some("Forgotten."));
        let message = command.original_message().unwrap();
        assert_eq!(message["content"], "Forgotten.");
        assert_eq!(message["components"], json!([]));
        bot.stop().await;
    })
    .await;
}

#[tokio::test]
async fn pressing_a_button_that_is_not_there_is_an_error() {
    bounded(async {
        let bot = start_bot().await;
        let ping = bot
            .fake
            .slash(&alice(), SlashCommand::new("ping"))
            .await
            .unwrap();
        ping.callback(WAIT).await.unwrap();
        let missing = bot
            .fake
            .press_button(&alice(), &ping, "nope")
            .await
            .unwrap_err();
        assert!(matches!(missing, FakeError::NotFound(_)), "{missing}");
        bot.stop().await;
    })
    .await;
}

#[tokio::test]
#[should_panic(expected = "serenity cannot parse this INTERACTION_CREATE payload")]
async fn an_unparsable_fixture_is_caught_before_it_is_sent() {
    let fake = FakeDiscord::start().await.unwrap();
    let mut payload = fake.slash_payload(&alice(), &SlashCommand::new("ping"));
    payload.as_object_mut().unwrap().remove("locale");
    // Panics before waiting for any gateway session.
    let _ = tokio::time::timeout(WAIT, fake.inject(&alice(), payload)).await;
}

#[tokio::test]
async fn a_route_the_fake_lacks_is_reported() {
    bounded(async {
        let bot = start_bot().await;
        let reply = bot
            .fake
            .slash(&alice(), SlashCommand::new("pins"))
            .await
            .unwrap()
            .callback(WAIT)
            .await
            .unwrap();
        assert!(
            reply
                .content()
                .unwrap_or_default()
                .starts_with("could not read the pins"),
            "{reply:?}"
        );
        let unhandled = bot.fake.unhandled_requests();
        assert_eq!(unhandled.len(), 1, "{unhandled:?}");
        assert_eq!(unhandled[0].method, "GET");
        assert_eq!(
            unhandled[0].path,
            format!("/api/v10/channels/{CHANNEL}/pins")
        );
        assert_eq!(unhandled[0].status, 404);
        assert!(
            bot.fake.problems()[0].contains("no route for GET"),
            "{:?}",
            bot.fake.problems()
        );
        bot.stop_with_problems().await;
    })
    .await;
}

#[tokio::test]
async fn waiting_for_a_reply_that_never_comes_times_out_with_what_the_fake_saw() {
    bounded(async {
        let bot = start_bot().await;
        let ping = bot
            .fake
            .slash(&alice(), SlashCommand::new("ping"))
            .await
            .unwrap();
        ping.callback(WAIT).await.unwrap();
        let never = ping
            .followups(Duration::from_millis(300), 1)
            .await
            .unwrap_err();
        let message = never.to_string();
        assert!(
            message.starts_with("timed out: fewer than 1 follow-ups"),
            "{message}"
        );
        assert!(message.contains("/callback -> 204"), "{message}");
        bot.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_bot_resumes_after_a_gateway_reconnect() {
    bounded(async {
        let bot = start_bot().await;
        bot.fake.request_reconnect();
        let reply = bot
            .fake
            .slash(&alice(), SlashCommand::new("ping"))
            .await
            .unwrap()
            .callback(WAIT)
            .await
            .unwrap();
        assert_eq!(reply.content(), Some("pong"));
        assert_eq!(
            bot.fake.identify_count(),
            1,
            "resumed, not identified again"
        );
        bot.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_dispatch_after_a_gap_in_the_sequence_numbers_is_still_handled() {
    bounded(async {
        let bot = start_bot().await;
        bot.fake.skip_sequence_numbers(5);
        let reply = bot
            .fake
            .slash(&alice(), SlashCommand::new("ping"))
            .await
            .unwrap()
            .callback(WAIT)
            .await
            .unwrap();
        assert_eq!(reply.content(), Some("pong"));
        bot.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_direct_message_reaches_its_user_and_is_recorded() {
    bounded(async {
        let fake = FakeDiscord::start().await.unwrap();
        let http = rest_client(&fake);
        let channel = serenity::UserId::new(ALICE)
            .create_dm_channel(&http)
            .await
            .unwrap();
        assert_eq!(channel.kind, serenity::ChannelType::Private);
        assert_eq!(channel.recipient.id.get(), ALICE);
        assert_eq!(fake.dm_channel(ALICE), Some(channel.id.get()));

        let message = channel.id.say(&http, "hello").await.unwrap();
        assert_eq!(message.channel_id, channel.id);
        assert_eq!(message.content, "hello");
        assert_eq!(message.author.id.get(), fake.bot_user_id());
        assert_eq!(message.guild_id, None);

        let received = fake.wait_direct_messages(ALICE, 1, WAIT).await.unwrap();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].user_id, ALICE);
        assert_eq!(received[0].channel_id, channel.id.get());
        assert_eq!(received[0].content(), Some("hello"));
        assert_eq!(received[0].message_id, Some(message.id.get()));
        assert!(received[0].delivered);

        // A message with a file arrives as multipart; its `payload_json` is what is recorded.
        let with_file = serenity::CreateMessage::new()
            .content("your export")
            .add_file(serenity::CreateAttachment::bytes(&b"{}"[..], "export.json"));
        channel.id.send_message(&http, with_file).await.unwrap();
        let received = fake.wait_direct_messages(ALICE, 2, WAIT).await.unwrap();
        assert_eq!(received[1].content(), Some("your export"));

        assert!(
            fake.direct_messages().iter().all(|m| m.user_id == ALICE),
            "{:?}",
            fake.direct_messages()
        );
        assert!(fake.problems().is_empty(), "{:?}", fake.problems());
    })
    .await;
}

#[tokio::test]
async fn a_user_keeps_one_dm_channel_of_their_own() {
    bounded(async {
        let fake = FakeDiscord::start().await.unwrap();
        let http = rest_client(&fake);
        let first = serenity::UserId::new(ALICE)
            .create_dm_channel(&http)
            .await
            .unwrap();
        let again = serenity::UserId::new(ALICE)
            .create_dm_channel(&http)
            .await
            .unwrap();
        let bob = serenity::UserId::new(BOB)
            .create_dm_channel(&http)
            .await
            .unwrap();
        assert_eq!(first.id, again.id);
        assert_ne!(first.id, bob.id);
        for other in [ALICE, BOB, fake.bot_user_id(), fake.application_id()] {
            assert_ne!(first.id.get(), other);
            assert_ne!(bob.id.get(), other);
        }

        // Each message lands with the user whose channel it went to.
        bob.id.say(&http, "for bob").await.unwrap();
        first.id.say(&http, "for alice").await.unwrap();
        let alice_got = fake.wait_direct_messages(ALICE, 1, WAIT).await.unwrap();
        let bob_got = fake.wait_direct_messages(BOB, 1, WAIT).await.unwrap();
        assert_eq!(alice_got[0].content(), Some("for alice"));
        assert_eq!(bob_got[0].content(), Some("for bob"));
        assert_eq!(bob_got[0].channel_id, bob.id.get());
    })
    .await;
}

#[tokio::test]
async fn a_user_who_closed_their_dms_gets_nothing() {
    bounded(async {
        let fake = FakeDiscord::start().await.unwrap();
        let http = rest_client(&fake);
        fake.refuse_direct_messages_to(ALICE);
        // Opening the channel still works; sending in it does not.
        let channel = serenity::UserId::new(ALICE)
            .create_dm_channel(&http)
            .await
            .unwrap();
        let refused = channel.id.say(&http, "hello").await.unwrap_err();
        assert_eq!(discord_error(&refused), Some((403, 50007)), "{refused:?}");
        assert!(
            refused
                .to_string()
                .contains("Cannot send messages to this user"),
            "{refused}"
        );

        assert!(
            fake.direct_messages().is_empty(),
            "{:?}",
            fake.direct_messages()
        );
        let attempts = fake.direct_message_attempts();
        assert_eq!(attempts.len(), 1, "{attempts:?}");
        assert_eq!(attempts[0].user_id, ALICE);
        assert_eq!(attempts[0].content(), Some("hello"));
        assert!(!attempts[0].delivered);
        assert_eq!(attempts[0].message_id, None);
        let never = fake
            .wait_direct_messages(ALICE, 1, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(
            never
                .to_string()
                .starts_with("timed out: fewer than 1 direct messages delivered"),
            "{never}"
        );

        // Other users still get theirs.
        let bob = serenity::UserId::new(BOB)
            .create_dm_channel(&http)
            .await
            .unwrap();
        bob.id.say(&http, "hi bob").await.unwrap();
        assert_eq!(fake.direct_messages().len(), 1);
        assert_eq!(fake.direct_messages()[0].user_id, BOB);
        assert!(fake.problems().is_empty(), "{:?}", fake.problems());
    })
    .await;
}

#[tokio::test]
async fn a_message_to_a_channel_the_fake_does_not_know_is_unknown_channel() {
    bounded(async {
        let fake = FakeDiscord::start().await.unwrap();
        let http = rest_client(&fake);
        let error = serenity::ChannelId::new(CHANNEL)
            .say(&http, "hello")
            .await
            .unwrap_err();
        assert_eq!(discord_error(&error), Some((404, 10003)), "{error:?}");
        assert!(fake.direct_message_attempts().is_empty());
        // A route the fake has, refusing: not an unhandled request, but a problem to know of.
        assert!(fake.unhandled_requests().is_empty());
        let problems = fake.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("Unknown Channel"), "{problems:?}");
    })
    .await;
}

#[tokio::test]
async fn a_command_direct_messages_its_caller() {
    bounded(async {
        let bot = start_bot().await;
        let reply = bot.answer(&alice(), SlashCommand::new("dm_me")).await;
        assert_eq!(reply.content(), Some("sent you a DM"));
        let received = bot.fake.wait_direct_messages(ALICE, 1, WAIT).await.unwrap();
        assert_eq!(received[0].content(), Some("a secret, in private"));
        assert_eq!(Some(received[0].channel_id), bot.fake.dm_channel(ALICE));

        bot.fake.refuse_direct_messages_to(ALICE);
        let reply = bot.answer(&alice(), SlashCommand::new("dm_me")).await;
        assert!(
            reply
                .content()
                .unwrap_or_default()
                .contains("Cannot send messages to this user"),
            "{reply:?}"
        );
        assert_eq!(bot.fake.direct_messages().len(), 1);
        assert_eq!(bot.fake.direct_message_attempts().len(), 2);
        bot.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_dm_caller_is_direct_messaged_in_the_channel_they_write_from() {
    bounded(async {
        let bot = start_bot_registering(CommandScope::Global).await;
        let dm_channel = 1_100_000_000_000_000_009;
        let dm = Caller::in_dm(ALICE, "alice", dm_channel);
        let reply = bot.answer(&dm, SlashCommand::new("dm_me")).await;
        assert_eq!(reply.content(), Some("sent you a DM"));
        let received = bot.fake.wait_direct_messages(ALICE, 1, WAIT).await.unwrap();
        assert_eq!(received[0].channel_id, dm_channel);
        bot.stop().await;
    })
    .await;
}
