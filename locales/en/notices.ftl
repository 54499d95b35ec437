# Direct messages the bot starts: to a contributor whose pool key was benched. Sent in English
# (there is no interaction to say which language the contributor reads).

# $name is the service's display name, $service its id (brave); $pool is global, channel
# ($channel, shown as a channel mention) or server ($server); $key_id the key's id (never the
# key); $until a Unix timestamp (shown by Discord as a date and time); $reason is
# rate_limited, quota_exhausted or unauthorized. The command in backticks is for the pool's
# managers: keep it as it is.
notice-bench = The { $name } key you shared in { $pool ->
        [global] the bot's global pool
        [channel] the pool of <#{ $channel }>
       *[server] the pool of server { $server }
    } (key id `{ $key_id }`) was benched until <t:{ $until }:f>: { $reason ->
        [rate_limited] rate-limited by the service (429)
        [quota_exhausted] out of credit or quota (402 Payment Required)
       *[unauthorized] refused by the service as unauthorized or revoked (401/403)
    }. Calls skip it until then. { $reason ->
        [quota_exhausted] The service says its credit or quota is spent: top it up at the service.
       *[other] The service refused it as unauthorized or revoked: check it at the service, or remove it from the pool if you revoked it.
    } Once it works again, whoever manages the pool can put it back with `{ $pool ->
        [global] /pool unbench
        [channel] /pool channel unbench
       *[server] /pool server unbench
    } service:{ $service } key_id:{ $key_id }`.
    To stop these messages: `/pool_key_dms enabled:False`.
