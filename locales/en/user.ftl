# Replies of the user commands (/set_user_api_key, /list_user_api_keys, ...).

## Shared by every reply.

reply-more-lines = { $count ->
        [one] … and 1 more line
       *[other] … and { $count } more lines
    }
reply-unknown-date = at an unknown date
