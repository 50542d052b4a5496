-- 0005: the POP3 maildrop lock. RFC 1939 gives a maildrop to one session at
-- a time; the lock lives here so that `ironpost account unlock-pop3` (another
-- process) can release a lock a stuck session holds.
CREATE TABLE pop3_locks (
    account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    holder     TEXT NOT NULL,
    since      INTEGER NOT NULL
);
