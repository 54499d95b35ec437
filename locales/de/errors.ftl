# Was die zentrale Fehlerbehandlung sagt, wenn ein Befehl fehlschlägt.

error-discord = Discord hat die Antwort nicht angenommen; bitte versuche es noch einmal.
error-argument = Diese Option ist ungültig: { $detail }.
error-guild-only = Dieser Befehl funktioniert nur in einem Serverkanal.
error-panic = Bei uns ist etwas schiefgegangen; es wurde protokolliert.
error-missing-permissions = Dir fehlt hier die Berechtigung, die dieser Befehl braucht.
error-registration = Die Registrierung dieses Befehls ist veraltet; versuche es in einer Minute noch einmal.
