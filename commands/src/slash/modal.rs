//! Secret entry: a modal as the first response to the command (no I/O before it), answered
//! ephemerally on the submit interaction itself.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use poise::serenity_prelude as serenity;
use zeroize::Zeroizing;

use crate::{ApplicationContext, CommandError};

/// Discord's limit on modal titles and input labels.
const MAX_LABEL: usize = 45;
/// Discord's limit on a text input's value.
pub const MAX_INPUT: u16 = 4_000;

static OPEN_MODALS: AtomicUsize = AtomicUsize::new(0);

/// How many modals are waiting for a submit right now, in this process (a diagnostic: after a
/// modal's timeout, its wait is gone).
pub fn open_modals() -> usize {
    OPEN_MODALS.load(Ordering::SeqCst)
}

struct OpenModal;

impl OpenModal {
    fn new() -> Self {
        OPEN_MODALS.fetch_add(1, Ordering::SeqCst);
        Self
    }
}

impl Drop for OpenModal {
    fn drop(&mut self) {
        OPEN_MODALS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One text input of a secret-entry modal, its label and placeholder in the user's language.
pub struct Input {
    /// The label (cut to 45 characters).
    pub label: String,
    /// Placeholder text (at most 100 characters).
    pub placeholder: String,
    /// Whether Discord requires a value.
    pub required: bool,
}

/// What the user submitted: the submit interaction (to answer) and each input's value
/// (zeroized on drop; an empty input is an empty string).
pub struct Submitted {
    /// The submit interaction, not yet acknowledged.
    pub interaction: serenity::ModalInteraction,
    /// The values, in the order of the inputs.
    pub values: Vec<Zeroizing<String>>,
}

impl std::fmt::Debug for Submitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submitted")
            .field("interaction", &self.interaction.id)
            .field("values", &self.values.len())
            .finish()
    }
}

fn cut(text: &str) -> String {
    text.chars().take(MAX_LABEL).collect()
}

/// Shows a modal as the first response and waits for its submit, at most `timeout`. `None`
/// when the user dismissed it (Discord sends nothing then) and the wait timed out.
///
/// The submit may come minutes after the command's checks ran: a command behind a permission
/// check checks again on the submit (`checks::pool_submit_allowed`) before storing anything.
pub async fn ask<U: Send + Sync + 'static, E>(
    ctx: ApplicationContext<'_, U, E>,
    title: &str,
    inputs: Vec<Input>,
    timeout: Duration,
) -> Result<Option<Submitted>, CommandError> {
    let custom_id = format!("stargazer-keys:{}", ctx.interaction.id);
    let rows = inputs
        .into_iter()
        .enumerate()
        .map(|(i, input)| {
            serenity::CreateActionRow::InputText(
                serenity::CreateInputText::new(
                    serenity::InputTextStyle::Short,
                    cut(&input.label),
                    i.to_string(),
                )
                .placeholder(input.placeholder)
                .required(input.required)
                .max_length(MAX_INPUT),
            )
        })
        .collect();
    let modal = serenity::CreateModal::new(&custom_id, cut(title)).components(rows);
    let _open = OpenModal::new();
    // Listen before showing the modal, so even an instant submit is caught.
    let mut submits = std::pin::pin!(
        serenity::ModalInteractionCollector::new(ctx.serenity_context())
            .custom_ids(vec![custom_id])
            .author_id(ctx.interaction.user.id)
            .timeout(timeout)
            .stream()
    );
    ctx.interaction
        .create_response(
            ctx.serenity_context(),
            serenity::CreateInteractionResponse::Modal(modal),
        )
        .await?;
    ctx.has_sent_initial_response.store(true, Ordering::SeqCst);
    let submitted = futures_util::StreamExt::next(&mut submits).await;
    let Some(mut interaction) = submitted else {
        metrics::counter!("stargazer_modal_timeouts_total").increment(1);
        tracing::debug!("a secret-entry modal was not submitted before its timeout");
        return Ok(None);
    };
    // Move the values out (no copy stays in the interaction) into zeroizing strings.
    let mut values: Vec<Zeroizing<String>> = Vec::new();
    for row in &mut interaction.data.components {
        if let Some(serenity::ActionRowComponent::InputText(input)) = row.components.first_mut() {
            values.push(Zeroizing::new(input.value.take().unwrap_or_default()));
        }
    }
    Ok(Some(Submitted {
        interaction,
        values,
    }))
}

/// Answers a modal submit with an ephemeral message (type 4, flags 64).
pub async fn answer(
    ctx: &serenity::Context,
    submitted: &Submitted,
    text: &str,
) -> Result<(), CommandError> {
    submitted
        .interaction
        .create_response(
            ctx,
            serenity::CreateInteractionResponse::Message(
                serenity::CreateInteractionResponseMessage::new()
                    .content(text)
                    .ephemeral(true)
                    .allowed_mentions(serenity::CreateAllowedMentions::new()),
            ),
        )
        .await?;
    Ok(())
}
