# Direktnachrichten, die der Bot von sich aus schickt: an jemanden, dessen Pool-Schlüssel
# gesperrt wurde.

notice-bench = Der Schlüssel für { $name }, den du { $pool ->
        [global] im globalen Pool des Bots
        [channel] im Pool des Kanals <#{ $channel }>
       *[server] im Pool des Servers { $server }
    } geteilt hast (Schlüssel-ID `{ $key_id }`), ist bis <t:{ $until }:f> gesperrt: { $reason ->
        [rate_limited] vom Dienst gedrosselt (429)
        [quota_exhausted] Guthaben oder Kontingent aufgebraucht (402 Payment Required)
       *[unauthorized] vom Dienst als nicht autorisiert oder widerrufen abgelehnt (401/403)
    }. Aufrufe überspringen ihn bis dahin. { $reason ->
        [quota_exhausted] Der Dienst meldet, dass das Guthaben oder Kontingent aufgebraucht ist: Lade es beim Dienst auf.
       *[other] Der Dienst hat ihn als nicht autorisiert oder widerrufen abgelehnt: Prüfe ihn beim Dienst, oder entferne ihn aus dem Pool, falls du ihn widerrufen hast.
    } Sobald er wieder funktioniert, kann ihn jeder, der den Pool verwaltet, mit `{ $pool ->
        [global] /pool unbench
        [channel] /pool channel unbench
       *[server] /pool server unbench
    } service:{ $service } key_id:{ $key_id }` wieder in Betrieb nehmen.
    Um diese Nachrichten abzustellen: `/pool_key_dms enabled:False`.
