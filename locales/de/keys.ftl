# Die Sätze des Kerns: was Werkzeuge weitergeben, wenn ein Schlüssel fehlt oder ein
# Tageslimit erreicht ist, Zeitspannen, und die Fehler beim Speichern, Entfernen und Auflisten.

## Ein Werkzeug hat keinen Schlüssel.

missing-key = Für dich ist kein API-Schlüssel für { $name } verfügbar. Füge deinen eigenen mit `/set_user_api_key service:{ $id }` hinzu: Du fügst ihn in ein privates Formular ein, und er gilt für dich auf jedem Server.
missing-key-signup = Für dich ist kein API-Schlüssel für { $name } verfügbar. Einen bekommst du unter { $url }. Füge deinen eigenen mit `/set_user_api_key service:{ $id }` hinzu: Du fügst ihn in ein privates Formular ein, und er gilt für dich auf jedem Server.
missing-key-unknown-service = Für `{ $service }` ist auf diesem Bot kein API-Schlüssel eingerichtet, und er nimmt für `{ $service }` noch keine Schlüssel an; bitte den Betreiber des Bots, den Dienst hinzuzufügen.
shared-keys-off = Du hast geteilte Schlüssel ausgeschaltet, deshalb nutzen deine Aufrufe nur deinen eigenen Schlüssel für { $name }, und du hast keinen gespeichert. Füge deinen mit `/set_user_api_key service:{ $id }` hinzu, oder erlaube deinen Aufrufen mit `/shared_keys use:True service:{ $id }` wieder geteilte Schlüssel.

## Ein Tageslimit ist erreicht.

default-key-limit-used = Du hast { $tool } { $current ->
        [one] einmal
       *[other] { $current }-mal
    } mit dem geteilten Schlüssel des Bots für { $name } genutzt, und das Tageslimit ist { $limit }.
pool-limit-closed = Die Schlüssel für { $name } im geteilten Pool { $pool ->
        [global] des Bots
        [channel] dieses Kanals
       *[server] dieses Servers
    } sind für Mitglieder gerade nicht freigegeben ({ $pool ->
        [global] die Admins des Bots haben
       *[other] seine Admins haben
    } das Tageslimit des Pools auf 0 gesetzt).
pool-limit-used = Du hast { $current ->
        [one] heute einmal einen Schlüssel
       *[other] heute { $current }-mal die Schlüssel
    } für { $name } aus dem geteilten Pool { $pool ->
        [global] des Bots
        [channel] dieses Kanals
       *[server] dieses Servers
    } genutzt, und { $pool ->
        [global] die Admins des Bots erlauben
       *[other] seine Admins erlauben
    } jedem Mitglied { $limit ->
        [one] eine Nutzung
       *[other] { $limit } Nutzungen
    } am Tag.
limit-resets-in = Der Zähler wird in { $duration } zurückgesetzt.
limit-resets-within-a-day = Der Zähler wird innerhalb von 24 Stunden zurückgesetzt.
limit-own-key = Um jetzt weiterzumachen, füge deinen eigenen Schlüssel mit `/set_user_api_key service:{ $id }` hinzu; dein eigener Schlüssel hat kein Tageslimit.
limit-own-key-signup = Um jetzt weiterzumachen, füge deinen eigenen Schlüssel mit `/set_user_api_key service:{ $id }` hinzu (einen bekommst du unter { $url }); dein eigener Schlüssel hat kein Tageslimit.

## Zeitspannen („Es wird in … zurückgesetzt“, Dativ).

duration = { $hours ->
        [0] { $minutes ->
            [0] weniger als einer Minute
            [one] 1 Minute
           *[other] { $minutes } Minuten
        }
       *[other] { $minutes ->
            [0] { $hours ->
                [one] 1 Stunde
               *[other] { $hours } Stunden
            }
           *[other] { $hours ->
                [one] 1 Stunde
               *[other] { $hours } Stunden
            } { $minutes ->
                [one] 1 Minute
               *[other] { $minutes } Minuten
            }
        }
    }

## Pools, wie ein Satz sie nennt.

pool-global = der globale Pool
pool-channel = der Pool des Kanals { $channel }
pool-server = der Pool des Servers { $server }

## Warum Speichern, Entfernen oder Auflisten eines Schlüssels fehlschlug.

key-error-empty = Der Schlüssel ist leer: Füge den Schlüssel selbst ein.
key-error-whitespace = Der Schlüssel enthält Leerzeichen oder Zeilenumbrüche: Füge nur den Schlüssel ein, in einer Zeile.
key-error-control = Der Schlüssel enthält Steuerzeichen (etwa NUL): Füge nur den Schlüssel ein.
key-error-format = Der Schlüssel enthält unsichtbare Formatierungszeichen (etwa eine Rechts-nach-links-Umkehr oder ein Leerzeichen ohne Breite): Kopiere den Schlüssel noch einmal aus seiner Quelle und füge nur ihn ein.
key-error-too-long = Der Schlüssel ist { $length } Zeichen lang; erlaubt sind { $max }.
key-error-key-id = { $text } ist keine Schlüssel-ID: Schlüssel-IDs sind 12 Hexadezimalziffern, wie die Pool-Liste sie zeigt.
key-error-unknown-service = Es gibt keinen Dienst namens `{ $service }`; die Dienste sind: { $known }.
key-error-service-name = { $text } ist kein gültiger Dienstname: Verwende 1 bis 32 Kleinbuchstaben, Ziffern, '-' oder '_'.
key-error-gitea-url-shape = Die Gitea-Basis-URL muss eine Zeile mit höchstens 200 Zeichen sein, ohne Leerzeichen.
key-error-gitea-url-not-url = Die Gitea-Basis-URL ist keine URL; schreibe sie als https://gitea.example.
key-error-gitea-url-scheme = Die Gitea-Basis-URL muss mit https:// beginnen (einfaches http nur für Hosts, die der Betreiber in STARGAZER_GITEA_HTTP_HOSTS aufführt).
key-error-gitea-url-user = Die Gitea-Basis-URL darf keinen Benutzernamen und kein Passwort enthalten (user@host).
key-error-gitea-url-query = Die Gitea-Basis-URL darf keine Abfrage (?) und kein Fragment (#) enthalten.
key-error-gitea-url-private = Die Gitea-Basis-URL nennt eine lokale oder private Adresse; verwende den öffentlichen Hostnamen der Instanz.
key-error-gitea-url-pool-host = Ein geteiltes Gitea-Token darf nur für Hosts gelten, die der Betreiber in STARGAZER_GITEA_POOL_HOSTS erlaubt.
key-error-gitea-json = Der Gitea-Wert ist JSON, aber nicht {"{"}"token": "...", "base_url": "..."{"}"}; füge nur das Token ein und die Basis-URL in ihr eigenes Feld.
key-error-rejected = { $service } hat diesen Schlüssel abgelehnt ({ $status }), deshalb wurde er nicht gespeichert: Prüfe, ob du ihn vollständig kopiert hast und dass er nicht widerrufen wurde.
key-error-pool-limit-too-high = { $limit } Nutzungen am Tag liegen über dem Höchstwert, den dieser Bot einem Pool erlaubt ({ $max }, STARGAZER_POOL_DAILY_LIMIT_MAX).
key-error-pool-full = Es lässt sich kein weiterer Schlüssel für `{ $service }` hinzufügen, denn { $pool } enthält schon { $max }, so viele, wie STARGAZER_POOL_MAX_KEYS erlaubt; entferne zuerst einen.
key-error-storage = Der Schlüsselspeicher ist nicht erreichbar, deshalb wurde nichts geändert: { $detail }.
key-error-not-replicated = Die Änderung wurde gemacht, aber { $detail }; prüfe sie, und mache sie noch einmal, falls sie fehlt.
key-error-values-remain = { $keys ->
        [one] Der Verschlüsselungsschlüssel des Schlüssels wurde vernichtet, sodass keine Kopie davon mehr geöffnet werden kann, aber der versiegelte Wert konnte nicht aus dem Speicher gelöscht werden ({ $detail }); führe das Löschen noch einmal aus, um ihn zu entfernen.
       *[other] Der Verschlüsselungsschlüssel der Schlüssel wurde vernichtet, sodass keine Kopie davon mehr geöffnet werden kann, aber die versiegelten Werte konnten nicht aus dem Speicher gelöscht werden ({ $detail }); führe das Löschen noch einmal aus, um sie zu entfernen.
    }
key-error-data-key-churn = Der Verschlüsselungsschlüssel hat sich beim Speichern dreimal geändert (er wird anderswo gelöscht), deshalb wurde der Schlüssel nicht gespeichert; versuche es noch einmal.
key-error-data-keys = Der Speicher der Verschlüsselungsschlüssel ist ausgefallen, deshalb wurde nichts geändert: { $detail }.
key-error-write-in-doubt = Der Schlüssel wurde geschrieben, aber { $cause }; er konnte auch nicht zurückgenommen werden und lässt sich deshalb vielleicht nicht öffnen: Liste die Schlüssel auf, und speichere ihn noch einmal, wenn er als unlesbar erscheint.
key-error-misconfigured = Dieser Befehl ist falsch eingerichtet ({ $detail }), deshalb lief er nicht; sag dem Betreiber des Bots Bescheid.
