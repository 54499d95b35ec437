//! The slash commands: users' own keys (`user`), the pools (`pool`), and what they share:
//! permission checks that reply before refusing, the secret-entry modals, autocomplete, and
//! the ephemeral replies.

pub(crate) mod autocomplete;
pub(crate) mod checks;
pub mod modal;
pub(crate) mod pool;
pub(crate) mod reply;
pub(crate) mod user;
