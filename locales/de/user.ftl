# Antworten der Benutzerbefehle (/set_user_api_key, /list_user_api_keys, ...).

## Für alle Antworten.

reply-more-lines = { $count ->
        [one] … und 1 weitere Zeile
       *[other] … und { $count } weitere Zeilen
    }
reply-unknown-date = an einem unbekannten Datum
