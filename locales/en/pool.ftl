# Replies of the pool commands (/pool …, /pool channel …, /pool server …).
#
# Placeables: $pool is global, channel or server (the pool the command manages); $name is a
# service's display name (Brave Search); $key a key id (12 hex digits); $user a Discord
# mention (<@123>). Numbers choose plural forms by the language's rules.

## Adding a key: the modal, then the answer.

# The modal's title (Discord shows at most 45 characters).
pool-add-title = { $pool ->
        [global] Global pool
        [channel] Channel pool
       *[server] Server pool
    }: { $name } key
pool-add-label = { $name } API key to share
pool-add-placeholder = Paste it here. Others can use it, with a daily limit.
# $masked is the key masked (…5555).
pool-added = Added a { $name } key ({ $masked }, id `{ $key }`) to { $pool ->
        [global] the global pool
        [channel] this channel's pool
       *[server] this server's pool
    }.
pool-already-added = That { $name } key is already in { $pool ->
        [global] the global pool
        [channel] this channel's pool
       *[server] this server's pool
    } (id `{ $key }`), so nothing changed.
# After pool-added, when the service was asked whether the key works.
pool-key-works = { $name } confirmed that the key works.
# $detail is what went wrong with the check (technical, in English).
pool-key-unchecked = It could not be checked with { $name } ({ $detail }), so it was saved unchecked.

## Removing and unbenching a key.

pool-removed = Removed the { $name } key `{ $key }` from { $pool ->
        [global] the global pool
        [channel] this channel's pool
       *[server] this server's pool
    }.
pool-not-removed = There is no { $name } key `{ $key }` in { $pool ->
        [global] the global pool
        [channel] this channel's pool
       *[server] this server's pool
    }, so nothing changed.
pool-unbenched = The { $name } key `{ $key }` of { $pool ->
        [global] the global pool
        [channel] this channel's pool
       *[server] this server's pool
    } is off the bench: draws use it again.
pool-not-benched = The { $name } key `{ $key }` of { $pool ->
        [global] the global pool
        [channel] this channel's pool
       *[server] this server's pool
    } was not benched, so nothing changed.

## The listing of a pool's keys.

pool-list-empty = { $pool ->
        [global] The global pool
        [channel] This channel's pool
       *[server] This server's pool
    } has no keys.
pool-list-empty-service = { $pool ->
        [global] The global pool
        [channel] This channel's pool
       *[server] This server's pool
    } has no keys for { $name }.
pool-list-header = { $pool ->
        [global] The global pool
        [channel] This channel's pool
       *[server] This server's pool
    } (only you can see this):
# One key of the listing, after its service and key id. $masked is the masked key in
# backticks, or pool-list-unreadable; $date when it was added (a Discord timestamp that shows
# as a date, or reply-unknown-date).
pool-list-key = { $masked }, added by { $user } { $date }
pool-list-key-by-operator = { $masked }, added by the operator { $date }
# Instead of the masked key, when it cannot be opened.
pool-list-unreadable = unreadable
# After pool-list-key: the key's calls today, and how many of them failed.
pool-list-uses-today = today { $count ->
        [one] { $count } use
       *[other] { $count } uses
    }, { $failed } failed
# After pool-list-key. $until is a Unix timestamp (Discord shows it as a date and as
# "in 3 hours"); $reason one of the pool-bench- messages.
pool-list-benched = **benched** until <t:{ $until }:f> (<t:{ $until }:R>): { $reason }
# Under the listing, for each service with the pool's own daily limit.
pool-list-limit = Each member may use its { $name } keys { $uses ->
        [1] once
        [2] twice
       *[other] { $uses } times
    } a day.

## Why a key was benched (put in pool-list-benched and the log).

pool-bench-rate-limited = rate-limited by the service (429)
pool-bench-quota-exhausted = out of credit or quota (402 Payment Required)
pool-bench-unauthorized = refused by the service as unauthorized or revoked (401/403)

## The log of a pool.

pool-log-empty = Nothing has happened in { $pool ->
        [global] the global pool
        [channel] this channel's pool
       *[server] this server's pool
    } yet.
pool-log-header = What happened in { $pool ->
        [global] the global pool
        [channel] this channel's pool
       *[server] this server's pool
    }, newest first:
# One entry of the log, after its time (the line starts "• <time>: "). $user is who did it.
pool-log-added = the { $name } key `{ $key }` was added by { $user }
pool-log-added-by-operator = the { $name } key `{ $key }` was added by the operator
pool-log-removed = the { $name } key `{ $key }` was removed by { $user }
pool-log-removed-by-operator = the { $name } key `{ $key }` was removed by the operator
pool-log-unbenched = the { $name } key `{ $key }` was unbenched by { $user }
pool-log-unbenched-by-operator = the { $name } key `{ $key }` was unbenched by the operator
# $reason is one of the pool-bench- messages; $user made the call that failed.
pool-log-benched-after-call = the { $name } key `{ $key }` was benched ({ $reason }) after a call of { $user }
pool-log-benched = the { $name } key `{ $key }` was benched ({ $reason })

## A pool's own daily limit for each member (/pool … limit).

pool-limit-set-zero = Members can no longer use the { $name } keys of { $pool ->
        [global] the global pool
        [channel] this channel's pool
       *[server] this server's pool
    }: its daily limit is 0. Their calls are refused until you raise it.
pool-limit-set = Each member may now use the { $name } keys of { $pool ->
        [global] the global pool
        [channel] this channel's pool
       *[server] this server's pool
    } { $uses ->
        [1] once
        [2] twice
       *[other] { $uses } times
    } a day (every tool together).
# $default is the bot's daily limit for each member and tool.
pool-limit-cleared = The { $name } keys of { $pool ->
        [global] the global pool
        [channel] this channel's pool
       *[server] this server's pool
    } follow the bot's daily limits again ({ $default } a day for each member and tool unless the operator set another for the tool).
# $reason is why, as a whole sentence.
pool-limit-not-changed = The limit was not changed: { $reason }
