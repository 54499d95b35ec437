# Replies of the user commands (/set_user_api_key, /list_user_api_keys, ...).

## Shared by every reply.

reply-more-lines = { $count ->
        [one] … and 1 more line
       *[other] … and { $count } more lines
    }
reply-unknown-date = at an unknown date

## /set_user_api_key: the key-entry form, and the reply to its submit. $name is the service's
## display name (Brave Search), $service its id (brave).

user-form-title = Your { $name } key
user-form-api-key = { $name } API key
user-form-token = Access token
user-form-base-url = Base URL (leave empty for the default)
user-form-secret-hint = Paste it here. It is stored encrypted and never shown again.
user-form-base-url-hint = https://gitea.example.com
# $masked is the key with all but its ends hidden (sk-…abcd).
user-saved = Saved your { $name } key ({ $masked }). It now works for you in every server and DM; remove it with `/remove_user_api_key service:{ $service }`.

## /remove_user_api_key

user-removed = Removed your { $name } key.
user-remove-none = You had no { $name } key saved, so nothing changed.

## /shared_keys. $id is the service's id (brave).

user-shared-on-service = Your { $name } calls may use shared keys again when you have no key of your own.
user-shared-off-service = Shared keys are off for your { $name } calls: they use only your own { $name } key. Turn them back on with `/shared_keys use:True service:{ $id }`.
user-shared-on-all = Your calls may use shared keys again, for every service, when you have no key of your own.
user-shared-off-all = Shared keys are off for all your calls: they use only your own keys. Turn them back on with `/shared_keys use:True`.

## /pool_key_dms

user-dms-on = You will get a DM when a key you shared in a pool is benched as revoked or out of credit.
user-dms-off = You will no longer get DMs about keys you shared. Turn them back on with `/pool_key_dms enabled:True`.

## /list_user_api_keys: one line each.

user-list-none = You have no API keys saved. Add one with `/set_user_api_key`.
user-list-header = Your API keys (only you can see this):
# $date is a Discord timestamp (<t:…:D>) or reply-unknown-date.
user-list-key = • **{ $name }** (`{ $service }`): `{ $masked }`, saved { $date }
user-list-key-unreadable = • **{ $name }** (`{ $service }`): unreadable: save it again, saved { $date }
# One item of user-list-shared's list. $source is channel, server, global (the bot's pool) or
# env (the operator's key).
user-list-shared-item = { $name } ({ $source ->
        [channel] this channel's pool
        [server] this server's pool
        [global] the bot's shared pool
        [env] the bot's own key
       *[none] none
    })
# $services is a list of display names, joined with commas.
user-list-off-all = You turned shared keys off: your calls use only your own keys.
user-list-off-all-except = You turned shared keys off: your calls use only your own keys (except { $services }).
user-list-off-some = You turned shared keys off for { $services }: those calls use only your own key.
user-list-uses-header = Your shared-key uses today:
# $tool is a tool's name (web_search); $duration is a duration (3 hours 12 minutes).
user-list-use = • `{ $tool }`: { $count } of { $limit }
user-list-use-resets = • `{ $tool }`: { $count } of { $limit }, resets in { $duration }
user-list-pool-uses-header = Your uses today of pools with their own limit:
# A pool, as a line of the pool uses starts with it. $kind is global, here (the server the
# command is used in), server (another server, $id) or channel ($id, shown as a channel
# mention).
user-list-pool = { $kind ->
        [global] the bot's { $name } pool
        [here] this server's { $name } pool
        [channel] the { $name } pool of <#{ $id }>
       *[server] the { $name } pool of server { $id }
    }
# $pool is user-list-pool; $limit the pool's daily limit for each member.
user-list-pool-use = • { $pool }: { $count } of { $limit }
user-list-pool-use-resets = • { $pool }: { $count } of { $limit }, resets in { $duration }
# The pool's admins have since cleared its limit.
user-list-pool-use-unlimited = • { $pool }: { $count }, no pool limit now
user-list-pool-use-unlimited-resets = • { $pool }: { $count }, no pool limit now, resets in { $duration }
user-list-no-shared = No shared keys are available in this channel.
# $services is a list of user-list-shared-item, joined with commas; $limit the daily limit.
user-list-shared = Shared keys you can use here without your own: { $services }. Shared keys are limited to { $limit ->
        [one] 1 use
       *[other] { $limit } uses
    } per tool per day; your own keys have no limit.

## /forget_my_api_keys

user-forget-confirm-button = Erase all my keys
user-forget-cancel-button = Cancel
user-forget-prompt = This erases every API key you saved, and the encryption key that protects them. It cannot be undone. Keys you added to shared pools stay in those pools.
user-forget-timeout = No answer within a minute, so nothing was erased.
user-forget-cancelled = Cancelled; nothing was erased.
# $count is how many keys were erased.
user-forget-done = { $count ->
        [0] You had no keys saved; your encryption key is erased too.
        [one] Erased your API key and its encryption key. Nothing of it can be read any more.
       *[other] Erased your { $count } API keys and their encryption key. Nothing of them can be read any more.
    }
# After user-forget-done, while a copy of the wrapped encryption key is still in the database's log.
user-forget-trace = One trace is left for now: the database still holds a copy of the encryption key, itself encrypted under the bot's master key, until it is cleared in the background.

## Autocomplete suggestions.

# In place of a masked key that cannot be opened.
user-suggest-unreadable = unreadable
