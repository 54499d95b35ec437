# Antworten der Benutzerbefehle (/set_user_api_key, /list_user_api_keys, ...).

## Für alle Antworten.

reply-more-lines = { $count ->
        [one] … und 1 weitere Zeile
       *[other] … und { $count } weitere Zeilen
    }
reply-unknown-date = unbekannt
## /set_user_api_key: das Formular für den Schlüssel und die Antwort darauf.

user-form-title = Dein Schlüssel für { $name }
user-form-api-key = API-Schlüssel für { $name }
user-form-token = Zugangstoken
user-form-base-url = Basis-URL (leer lassen für den Standard)
user-form-secret-hint = Hier einfügen. Wird verschlüsselt gespeichert und nie wieder angezeigt.
user-form-base-url-hint = https://gitea.example.com
user-saved = Dein Schlüssel für { $name } ({ $masked }) ist gespeichert. Er gilt jetzt für dich auf jedem Server und in DMs; entfernen kannst du ihn mit `/remove_user_api_key service:{ $service }`.
## /remove_user_api_key

user-removed = Dein Schlüssel für { $name } wurde entfernt.
user-remove-none = Du hattest keinen Schlüssel für { $name } gespeichert, also hat sich nichts geändert.
## /shared_keys

user-shared-on-service = Deine Aufrufe an { $name } dürfen wieder geteilte Schlüssel nutzen, wenn du keinen eigenen Schlüssel hast.
user-shared-off-service = Geteilte Schlüssel sind für deine Aufrufe an { $name } ausgeschaltet: Diese nutzen nur deinen eigenen Schlüssel für { $name }. Schalte sie mit `/shared_keys use:True service:{ $id }` wieder ein.
user-shared-on-all = Deine Aufrufe dürfen wieder geteilte Schlüssel nutzen, für jeden Dienst, wenn du keinen eigenen Schlüssel hast.
user-shared-off-all = Geteilte Schlüssel sind für alle deine Aufrufe ausgeschaltet: Diese nutzen nur deine eigenen Schlüssel. Schalte sie mit `/shared_keys use:True` wieder ein.

## /pool_key_dms

user-dms-on = Du bekommst eine DM, wenn ein Schlüssel, den du in einem Pool geteilt hast, als widerrufen oder ohne Guthaben gesperrt wird.
user-dms-off = Du bekommst keine DMs mehr über Schlüssel, die du geteilt hast. Schalte sie mit `/pool_key_dms enabled:True` wieder ein.

## /list_user_api_keys: je eine Zeile.

user-list-none = Du hast keine API-Schlüssel gespeichert. Füge einen mit `/set_user_api_key` hinzu.
user-list-header = Deine API-Schlüssel (nur du siehst das):
user-list-key = • **{ $name }** (`{ $service }`): `{ $masked }` (gespeichert: { $date })
user-list-key-unreadable = • **{ $name }** (`{ $service }`): unlesbar (gespeichert: { $date }): Speichere ihn noch einmal.
user-list-shared-item = { $name } ({ $source ->
        [channel] Pool dieses Kanals
        [server] Pool dieses Servers
        [global] geteilter Pool des Bots
        [env] eigener Schlüssel des Bots
       *[none] keiner
    })
user-list-off-all = Du hast geteilte Schlüssel ausgeschaltet: Deine Aufrufe nutzen nur deine eigenen Schlüssel.
user-list-off-all-except = Du hast geteilte Schlüssel ausgeschaltet: Deine Aufrufe nutzen nur deine eigenen Schlüssel (außer { $services }).
user-list-off-some = Du hast geteilte Schlüssel für { $services } ausgeschaltet: Diese Aufrufe nutzen nur deinen eigenen Schlüssel.
user-list-uses-header = Deine heutigen Nutzungen geteilter Schlüssel:
user-list-use = • `{ $tool }`: { $count } von { $limit }
user-list-use-resets = • `{ $tool }`: { $count } von { $limit }, wird in { $duration } zurückgesetzt
user-list-pool-uses-header = Deine heutigen Nutzungen von Pools mit eigenem Limit:
# Steht am Anfang einer Zeile, daher ohne Artikel.
user-list-pool = { $kind ->
        [global] Pool des Bots für { $name }
        [here] Pool dieses Servers für { $name }
        [channel] Pool des Kanals <#{ $id }> für { $name }
       *[server] Pool des Servers { $id } für { $name }
    }
user-list-pool-use = • { $pool }: { $count } von { $limit }
user-list-pool-use-resets = • { $pool }: { $count } von { $limit }, wird in { $duration } zurückgesetzt
user-list-pool-use-unlimited = • { $pool }: { $count }, derzeit ohne Pool-Limit
user-list-pool-use-unlimited-resets = • { $pool }: { $count }, derzeit ohne Pool-Limit, wird in { $duration } zurückgesetzt
user-list-no-shared = In diesem Kanal sind keine geteilten Schlüssel verfügbar.
user-list-shared = Geteilte Schlüssel, die du hier ohne eigenen nutzen kannst: { $services }. Geteilte Schlüssel sind auf { $limit ->
        [one] eine Nutzung
       *[other] { $limit } Nutzungen
    } pro Werkzeug und Tag begrenzt; deine eigenen Schlüssel haben kein Limit.

## /forget_my_api_keys

user-forget-confirm-button = Alle meine Schlüssel löschen
user-forget-cancel-button = Abbrechen
user-forget-prompt = Damit löschst du jeden API-Schlüssel, den du gespeichert hast, und den Verschlüsselungsschlüssel, der sie schützt. Das lässt sich nicht rückgängig machen. Schlüssel, die du zu geteilten Pools hinzugefügt hast, bleiben in diesen Pools.
user-forget-timeout = Innerhalb einer Minute kam keine Antwort, also wurde nichts gelöscht.
user-forget-cancelled = Abgebrochen; nichts wurde gelöscht.
user-forget-done = { $count ->
        [0] Du hattest keine Schlüssel gespeichert; dein Verschlüsselungsschlüssel ist ebenfalls gelöscht.
        [one] Dein API-Schlüssel und sein Verschlüsselungsschlüssel sind gelöscht. Nichts davon kann mehr gelesen werden.
       *[other] Deine { $count } API-Schlüssel und ihr Verschlüsselungsschlüssel sind gelöscht. Nichts davon kann mehr gelesen werden.
    }
user-forget-trace = Eine Spur bleibt vorerst: Die Datenbank enthält noch eine Kopie des Verschlüsselungsschlüssels, selbst verschlüsselt mit dem Hauptschlüssel des Bots, bis sie im Hintergrund bereinigt wird.

## Vorschläge der Autovervollständigung.

user-suggest-unreadable = unlesbar
