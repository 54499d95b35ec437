//! A bot under test, connected to a [`FakeDiscord`]: runs slash commands and modals through
//! the fake, and when stopped checks that the fake found nothing wrong with what the bot sent.
//! This crate's end-to-end tests use it, and so can any other poise command module.

use std::time::Duration;

use poise::serenity_prelude as serenity;
use tokio::task::JoinHandle;

use super::{Callback, Caller, CommandScope, FakeDiscord, InteractionHandle, SlashCommand};

/// A running bot and the fake Discord it is connected to.
///
/// The helpers panic when the fake or the bot fails (they are for tests), each with what went
/// wrong; every wait is bounded by the harness's `wait`.
pub struct TestBot {
    /// The fake the bot is connected to.
    pub fake: FakeDiscord,
    stop: Option<Box<dyn FnOnce() + Send>>,
    task: JoinHandle<()>,
    wait: Duration,
}

impl TestBot {
    /// Starts a serenity client with a poise framework of `options` against `fake`, registers
    /// the commands in `scope` from its setup (with `data` as the framework's data), and waits
    /// for the registration.
    pub async fn start_poise<U, E>(
        fake: FakeDiscord,
        options: poise::FrameworkOptions<U, E>,
        data: U,
        scope: CommandScope,
        wait: Duration,
    ) -> Self
    where
        U: Send + Sync + 'static,
        E: From<serenity::Error> + Send + Sync + 'static,
    {
        let framework = poise::Framework::builder()
            .options(options)
            // The builder overwrites `FrameworkOptions::initialize_owners` with its own flag.
            .initialize_owners(false)
            .setup(move |ctx, _ready, framework| {
                Box::pin(async move {
                    let commands = &framework.options().commands;
                    match scope {
                        CommandScope::Guild(guild) => {
                            let guild = serenity::GuildId::new(guild);
                            poise::builtins::register_in_guild(ctx, commands, guild).await?;
                        }
                        CommandScope::Global => {
                            poise::builtins::register_globally(ctx, commands).await?;
                        }
                    }
                    Ok(data)
                })
            })
            .build();
        let http = serenity::HttpBuilder::new(fake.token())
            .proxy(fake.http_url())
            .ratelimiter_disabled(true)
            .build();
        let mut client = serenity::ClientBuilder::new_with_http(
            http,
            serenity::GatewayIntents::non_privileged(),
        )
        .framework(framework)
        .await
        .expect("build the serenity client");
        let shards = client.shard_manager.clone();
        let task = tokio::spawn(async move {
            if let Err(err) = client.start().await {
                eprintln!("the client stopped: {err}");
            }
        });
        let stop = move || {
            tokio::spawn(async move { shards.shutdown_all().await });
        };
        Self::running(fake, stop, task, wait).await
    }

    /// A bot started some other way (the production runner, `crate::bot::run`, say): `stop`
    /// asks it to stop and `task` ends when it has. Waits for its registration.
    pub async fn running(
        fake: FakeDiscord,
        stop: impl FnOnce() + Send + 'static,
        task: JoinHandle<()>,
        wait: Duration,
    ) -> Self {
        fake.wait_registered(wait.max(Duration::from_secs(30)))
            .await
            .expect("the bot registers its commands");
        Self {
            fake,
            stop: Some(Box::new(stop)),
            task,
            wait,
        }
    }

    /// Injects a slash command.
    pub async fn slash(&self, caller: &Caller, command: SlashCommand) -> InteractionHandle {
        self.fake
            .slash(caller, command)
            .await
            .expect("inject the command")
    }

    /// Runs a command and returns the bot's first answer to it.
    pub async fn answer(&self, caller: &Caller, command: SlashCommand) -> Callback {
        self.slash(caller, command)
            .await
            .callback(self.wait)
            .await
            .expect("the bot answers")
    }

    /// Runs a command that shows a modal, submits `values`, and returns the answer to the
    /// submit.
    pub async fn through_modal(
        &self,
        caller: &Caller,
        command: SlashCommand,
        values: &[&str],
    ) -> Callback {
        let modal = self.answer(caller, command).await;
        assert!(modal.is_modal(), "expected a modal first, got {modal:?}");
        self.fake
            .submit_modal(caller, &modal, values)
            .await
            .expect("submit the modal")
            .callback(self.wait)
            .await
            .expect("the bot answers the submit")
    }

    /// Asserts that every message the bot answered with is ephemeral (callbacks of type 4 and
    /// 5, and follow-ups that carry flags).
    pub fn assert_every_reply_ephemeral(&self) {
        for callback in self.fake.callbacks() {
            if matches!(callback.kind, 4 | 5) {
                assert!(
                    callback.is_ephemeral(),
                    "a reply is visible to everyone: {callback:?}"
                );
            }
        }
        for followup in self.fake.followups() {
            if followup.body.get("content").is_some() && followup.body.get("flags").is_some() {
                assert!(
                    followup.is_ephemeral(),
                    "a follow-up is visible to everyone: {followup:?}"
                );
            }
        }
    }

    /// Stops the bot, and asserts that it stopped within the wait and that the fake found
    /// nothing wrong with what it sent.
    pub async fn stop(self) {
        let problems = self.stop_with_problems().await;
        assert!(
            problems.is_empty(),
            "the fake Discord reported: {problems:#?}"
        );
    }

    /// Stops the bot (asserting that it stopped within the wait), and returns what the fake
    /// found wrong with what it sent.
    pub async fn stop_with_problems(mut self) -> Vec<String> {
        let problems = self.fake.problems();
        if let Some(stop) = self.stop.take() {
            stop();
        }
        let ended = tokio::time::timeout(self.wait, &mut self.task).await;
        assert!(ended.is_ok(), "the bot did not stop within {:?}", self.wait);
        problems
    }
}
