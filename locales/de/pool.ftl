# Antworten der Pool-Befehle (/pool …, /pool channel …, /pool server …).
#
# $pool ist global, channel oder server (der Pool, den der Befehl verwaltet); $name ist der
# Anzeigename eines Dienstes (Brave Search); $key eine Schlüssel-ID (12 Hexziffern); $user
# eine Discord-Erwähnung (<@123>).

## Einen Schlüssel hinzufügen: das Formular, dann die Antwort.

# Der Titel des Formulars (Discord zeigt höchstens 45 Zeichen).
pool-add-title = { $pool ->
        [global] Globaler Pool
        [channel] Kanal-Pool
       *[server] Server-Pool
    }: Schlüssel für { $name }
pool-add-label = API-Schlüssel für { $name } zum Teilen
pool-add-placeholder = Füge ihn hier ein. Andere können ihn nutzen, mit einem Tageslimit.
# $masked ist der maskierte Schlüssel (…5555).
pool-added = Ein Schlüssel für { $name } ({ $masked }, ID `{ $key }`) wurde { $pool ->
        [global] zum globalen Pool
        [channel] zum Pool dieses Kanals
       *[server] zum Pool dieses Servers
    } hinzugefügt.
pool-already-added = Dieser Schlüssel für { $name } ist schon { $pool ->
        [global] im globalen Pool
        [channel] im Pool dieses Kanals
       *[server] im Pool dieses Servers
    } (ID `{ $key }`), deshalb hat sich nichts geändert.
pool-key-works = { $name } hat bestätigt, dass der Schlüssel funktioniert.
# $detail sagt, was bei der Prüfung schiefging (technisch, auf Englisch).
pool-key-unchecked = Er konnte nicht mit { $name } geprüft werden ({ $detail }), deshalb wurde er ungeprüft gespeichert.

## Einen Schlüssel entfernen oder wieder in Betrieb nehmen.

pool-removed = Der Schlüssel `{ $key }` für { $name } wurde { $pool ->
        [global] aus dem globalen Pool
        [channel] aus dem Pool dieses Kanals
       *[server] aus dem Pool dieses Servers
    } entfernt.
pool-not-removed = { $pool ->
        [global] Im globalen Pool
        [channel] Im Pool dieses Kanals
       *[server] Im Pool dieses Servers
    } gibt es keinen Schlüssel `{ $key }` für { $name }, deshalb hat sich nichts geändert.
pool-unbenched = Der Schlüssel `{ $key }` für { $name } { $pool ->
        [global] im globalen Pool
        [channel] im Pool dieses Kanals
       *[server] im Pool dieses Servers
    } ist nicht mehr gesperrt: Aufrufe nutzen ihn wieder.
pool-not-benched = Der Schlüssel `{ $key }` für { $name } { $pool ->
        [global] im globalen Pool
        [channel] im Pool dieses Kanals
       *[server] im Pool dieses Servers
    } war nicht gesperrt, deshalb hat sich nichts geändert.

## Die Liste der Schlüssel eines Pools.

pool-list-empty = { $pool ->
        [global] Der globale Pool
        [channel] Der Pool dieses Kanals
       *[server] Der Pool dieses Servers
    } hat keine Schlüssel.
pool-list-empty-service = { $pool ->
        [global] Der globale Pool
        [channel] Der Pool dieses Kanals
       *[server] Der Pool dieses Servers
    } hat keine Schlüssel für { $name }.
pool-list-header = { $pool ->
        [global] Der globale Pool
        [channel] Der Pool dieses Kanals
       *[server] Der Pool dieses Servers
    } (nur du siehst das):
# Ein Schlüssel der Liste, nach Dienst und Schlüssel-ID. $masked ist der maskierte Schlüssel
# in Backticks oder pool-list-unreadable; $date, wann er hinzugefügt wurde (ein
# Discord-Zeitstempel, der als Datum erscheint, oder reply-unknown-date).
pool-list-key = { $masked }, hinzugefügt von { $user } (Datum: { $date })
pool-list-key-by-operator = { $masked }, hinzugefügt vom Betreiber (Datum: { $date })
pool-list-unreadable = unlesbar
pool-list-uses-today = heute { $count ->
        [one] { $count } Nutzung
       *[other] { $count } Nutzungen
    }, { $failed } davon fehlgeschlagen
# $until ist ein Unix-Zeitstempel (Discord zeigt ihn als Datum und als „in 3 Stunden“);
# $reason eine der pool-bench-Nachrichten.
pool-list-benched = **gesperrt** bis <t:{ $until }:f> (<t:{ $until }:R>): { $reason }
pool-list-limit = Jedes Mitglied darf die Schlüssel dieses Pools für { $name } { $uses ->
        [1] einmal
        [2] zweimal
       *[other] { $uses }-mal
    } am Tag nutzen.

## Warum ein Schlüssel gesperrt wurde.

pool-bench-rate-limited = vom Dienst gedrosselt (429)
pool-bench-quota-exhausted = Guthaben oder Kontingent aufgebraucht (402 Payment Required)
pool-bench-unauthorized = vom Dienst als nicht autorisiert oder widerrufen abgelehnt (401/403)

## Das Protokoll eines Pools.

pool-log-empty = { $pool ->
        [global] Im globalen Pool
        [channel] Im Pool dieses Kanals
       *[server] Im Pool dieses Servers
    } ist noch nichts passiert.
pool-log-header = Was { $pool ->
        [global] im globalen Pool
        [channel] im Pool dieses Kanals
       *[server] im Pool dieses Servers
    } passiert ist, das Neueste zuerst:
# Ein Eintrag des Protokolls, nach seiner Zeit (die Zeile beginnt mit „• <Zeit>: “).
pool-log-added = Der Schlüssel `{ $key }` für { $name } wurde von { $user } hinzugefügt
pool-log-added-by-operator = Der Schlüssel `{ $key }` für { $name } wurde vom Betreiber hinzugefügt
pool-log-removed = Der Schlüssel `{ $key }` für { $name } wurde von { $user } entfernt
pool-log-removed-by-operator = Der Schlüssel `{ $key }` für { $name } wurde vom Betreiber entfernt
pool-log-unbenched = Der Schlüssel `{ $key }` für { $name } wurde von { $user } wieder in Betrieb genommen
pool-log-unbenched-by-operator = Der Schlüssel `{ $key }` für { $name } wurde vom Betreiber wieder in Betrieb genommen
# $user hat den Aufruf gemacht, der fehlschlug.
pool-log-benched-after-call = Der Schlüssel `{ $key }` für { $name } wurde nach einem Aufruf von { $user } gesperrt ({ $reason })
pool-log-benched = Der Schlüssel `{ $key }` für { $name } wurde gesperrt ({ $reason })

## Das eigene Tageslimit eines Pools für jedes Mitglied (/pool … limit).

pool-limit-set-zero = Mitglieder können die Schlüssel { $pool ->
        [global] des globalen Pools
        [channel] des Pools dieses Kanals
       *[server] des Pools dieses Servers
    } für { $name } nicht mehr nutzen: Das Tageslimit des Pools ist 0. Ihre Aufrufe werden abgelehnt, bis du es erhöhst.
pool-limit-set = Jedes Mitglied darf die Schlüssel { $pool ->
        [global] des globalen Pools
        [channel] des Pools dieses Kanals
       *[server] des Pools dieses Servers
    } für { $name } jetzt { $uses ->
        [1] einmal
        [2] zweimal
       *[other] { $uses }-mal
    } am Tag nutzen (alle Werkzeuge zusammen).
# $default ist das Tageslimit des Bots für jedes Mitglied und Werkzeug.
pool-limit-cleared = Für die Schlüssel { $pool ->
        [global] des globalen Pools
        [channel] des Pools dieses Kanals
       *[server] des Pools dieses Servers
    } für { $name } gelten wieder die Tageslimits des Bots ({ $default } am Tag für jedes Mitglied und Werkzeug, sofern der Betreiber für das Werkzeug kein anderes festgelegt hat).
pool-limit-not-changed = Das Limit wurde nicht geändert: { $reason }
