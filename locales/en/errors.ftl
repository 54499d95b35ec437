# What the central error handler tells a user when a command fails. Each is a whole sentence.

error-discord = Discord did not accept the reply; please try again.
# $detail is what the option parser said (in English), escaped.
error-argument = That option is not valid: { $detail }.
error-guild-only = This command works only in a server channel.
error-panic = Something went wrong on our side; it has been logged.
error-missing-permissions = You do not have the permission this command needs here.
error-registration = This command's registration is out of date; try again in a minute.
