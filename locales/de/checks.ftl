# Warum jemand einen Pool nicht verwalten darf (die Berechtigungsprüfungen der Pool-Befehle).

## Ein Pool-Befehl wird beim Ausführen abgelehnt.

check-not-bot-admin = Nur die Admins des Bots können den globalen Pool verwalten. Um einen Schlüssel in diesem Kanal zu teilen, nutze `/pool channel add` (dafür brauchst du die Berechtigung „Kanäle verwalten“).
check-channel-pool-in-dm = Kanal-Pools gibt es nur in Serverkanälen, und dies ist eine Direktnachricht.
check-server-pool-in-dm = Server-Pools gibt es nur auf Servern, und dies ist eine Direktnachricht.
check-no-manage-channels = Du brauchst in diesem Kanal die Berechtigung „Kanäle verwalten“, um seinen Schlüssel-Pool zu verwalten.
check-no-manage-server = Du brauchst auf diesem Server die Berechtigung „Server verwalten“, um seinen Schlüssel-Pool zu verwalten.

## Ein im Formular eines Pools eingegebener Schlüssel wird abgelehnt: Das Recht ging verloren, während das Formular offen war.

check-submit-not-bot-admin = Du bist kein Admin des Bots mehr, deshalb wurde der Schlüssel nicht zum globalen Pool hinzugefügt.
check-submit-channel-pool-in-dm = Kanal-Pools gibt es nur in Serverkanälen, deshalb wurde der Schlüssel nicht hinzugefügt.
check-submit-server-pool-in-dm = Server-Pools gibt es nur auf Servern, deshalb wurde der Schlüssel nicht hinzugefügt.
check-submit-no-manage-channels = Du hast in diesem Kanal die Berechtigung „Kanäle verwalten“ nicht mehr, deshalb wurde der Schlüssel nicht zu seinem Pool hinzugefügt.
check-submit-no-manage-server = Du hast auf diesem Server die Berechtigung „Server verwalten“ nicht mehr, deshalb wurde der Schlüssel nicht zu seinem Pool hinzugefügt.
