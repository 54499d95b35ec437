# Why someone may not manage a pool (the permission checks of the pool commands).

## A pool command is refused when it is run.

check-not-bot-admin = Only bot admins can manage the global pool. To share a key in this channel, use `/pool channel add` (it needs the Manage Channels permission).
check-channel-pool-in-dm = Channel pools exist only in server channels, and this is a direct message.
check-server-pool-in-dm = Server pools exist only in servers, and this is a direct message.
check-no-manage-channels = You need the Manage Channels permission in this channel to manage its key pool.
check-no-manage-server = You need the Manage Server permission in this server to manage its key pool.

## A key typed into a pool's modal is refused: the right went while the modal was open.

check-submit-not-bot-admin = You are no longer a bot admin, so the key was not added to the global pool.
check-submit-channel-pool-in-dm = Channel pools exist only in server channels, so the key was not added.
check-submit-server-pool-in-dm = Server pools exist only in servers, so the key was not added.
check-submit-no-manage-channels = You no longer have the Manage Channels permission in this channel, so the key was not added to its pool.
check-submit-no-manage-server = You no longer have the Manage Server permission in this server, so the key was not added to its pool.
