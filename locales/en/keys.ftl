# The core's sentences: what sibling tools relay when a key is missing or a daily limit is
# spent, durations, and the errors of saving, removing and listing keys.
#
# Placeables: $name is a service's display name (Brave Search), $id its id (brave), $url
# where to get a key. Numbers choose plural forms by the language's rules.

## A tool has no key.

missing-key = No { $name } API key is available to you. Add yours with `/set_user_api_key service:{ $id }`: you paste it into a private form, and it works for you in every server.
missing-key-signup = No { $name } API key is available to you. You can get one at { $url }. Add yours with `/set_user_api_key service:{ $id }`: you paste it into a private form, and it works for you in every server.
missing-key-unknown-service = No API key for `{ $service }` is set up on this bot, and it does not take keys for `{ $service }` yet; ask the bot's operator to add the service.
shared-keys-off = You turned shared keys off, so your calls use only your own { $name } key, and you have none saved. Add yours with `/set_user_api_key service:{ $id }`, or let your calls use shared keys again with `/shared_keys use:True service:{ $id }`.

## A daily limit is spent. The sentences are put together as: what was used, when it resets,
## how to go on.

default-key-limit-used = You have used { $tool } { $current ->
        [one] once
       *[other] { $current } times
    } with the bot's shared { $name } key, and the daily limit is { $limit }.
# $pool is global, channel or server.
pool-limit-closed = The { $name } keys of { $pool ->
        [global] the bot's
        [channel] this channel's
       *[server] this server's
    } shared pool are not open to members at the moment ({ $pool ->
        [global] the bot's admins
       *[other] its admins
    } set its daily limit to 0).
pool-limit-used = { $current ->
        [one] You have used a key of { $pool ->
            [global] the bot's
            [channel] this channel's
           *[server] this server's
        } shared { $name } pool once today
       *[other] You have used the keys of { $pool ->
            [global] the bot's
            [channel] this channel's
           *[server] this server's
        } shared { $name } pool { $current } times today
    }, and { $pool ->
        [global] the bot's admins
       *[other] its admins
    } allow { $limit } a day for each member.
limit-resets-in = It resets in { $duration }.
limit-resets-within-a-day = It resets within 24 hours.
limit-own-key = To keep going now, add your own key with `/set_user_api_key service:{ $id }`; your own key has no daily limit.
limit-own-key-signup = To keep going now, add your own key with `/set_user_api_key service:{ $id }` (get one at { $url }); your own key has no daily limit.

## Durations ("It resets in …").

duration = { $hours ->
        [0] { $minutes ->
            [0] less than a minute
            [one] 1 minute
           *[other] { $minutes } minutes
        }
       *[other] { $minutes ->
            [0] { $hours ->
                [one] 1 hour
               *[other] { $hours } hours
            }
           *[other] { $hours ->
                [one] 1 hour
               *[other] { $hours } hours
            } { $minutes ->
                [one] 1 minute
               *[other] { $minutes } minutes
            }
        }
    }

## Pools, as a sentence names them.

pool-global = the global pool
pool-channel = the pool of channel { $channel }
pool-server = the pool of server { $server }

## Why saving, removing or listing a key failed. Each is a whole sentence.

key-error-empty = The key is empty: paste the key itself.
key-error-whitespace = The key contains spaces or line breaks: paste the key alone, on one line.
key-error-control = The key contains control characters (such as NUL): paste the key alone.
key-error-format = The key contains invisible formatting characters (such as a right-to-left override or a zero-width space): copy the key again from its source and paste it alone.
key-error-too-long = The key is { $length } characters long; the limit is { $max }.
# $text is what the user typed, escaped.
key-error-key-id = { $text } is not a key id: key ids are 12 hex digits, as the pool listing shows them.
key-error-unknown-service = There is no service called `{ $service }`; the services are: { $known }.
key-error-service-name = { $text } is not a valid service name: use 1 to 32 lowercase letters, digits, '-' or '_'.
key-error-gitea-url-shape = The Gitea base URL must be one line of at most 200 characters, without spaces.
key-error-gitea-url-not-url = The Gitea base URL is not a URL; write it as https://gitea.example.
key-error-gitea-url-scheme = The Gitea base URL must start with https:// (plain http only for hosts the operator lists in STARGAZER_GITEA_HTTP_HOSTS).
key-error-gitea-url-user = The Gitea base URL must not contain a user name or password (user@host).
key-error-gitea-url-query = The Gitea base URL must not contain a query (?) or fragment (#).
key-error-gitea-url-private = The Gitea base URL names a local or private address; use the instance's public host name.
key-error-gitea-url-pool-host = A shared Gitea token may only be for the hosts the operator allows in STARGAZER_GITEA_POOL_HOSTS.
key-error-gitea-json = The Gitea value is JSON, but not {"{"}"token": "...", "base_url": "..."{"}"}; paste the token alone and the base URL in its own field.
key-error-rejected = { $service } refused this key ({ $status }), so it was not saved: check that you copied all of it and that it has not been revoked.
key-error-pool-limit-too-high = { $limit } uses a day is above the most this bot allows a pool to set ({ $max }, STARGAZER_POOL_DAILY_LIMIT_MAX).
key-error-pool-full = { $pool } already holds { $max } { $service } keys, the most STARGAZER_POOL_MAX_KEYS allows; remove one first.
# $detail is what the store said (technical, in English).
key-error-storage = The key store is unavailable, so nothing was changed: { $detail }.
key-error-not-replicated = The change was made, but { $detail }; check it, and make it again if it is gone.
key-error-values-remain = { $keys ->
        [one] The encryption key of the key was destroyed, so no copy of it can be opened any more, but the sealed value could not be deleted from storage ({ $detail }); run the erasure again to delete it.
       *[other] The encryption key of the keys was destroyed, so no copy of them can be opened any more, but the sealed values could not be deleted from storage ({ $detail }); run the erasure again to delete them.
    }
key-error-data-key-churn = The encryption key changed three times while the key was being saved (it is being erased elsewhere), so it was not saved; try again.
key-error-data-keys = The encryption key store failed, so nothing was changed: { $detail }.
# $cause is another of these sentences, without its full stop.
key-error-write-in-doubt = The key was written, but { $cause }; it could not be taken back either, so it may not open: list the keys, and save it again if it shows as unreadable.
# $detail says what is wrong with the tool or service name the command uses (in English).
key-error-misconfigured = This command is misconfigured ({ $detail }), so it did not run; tell the bot's operator.
