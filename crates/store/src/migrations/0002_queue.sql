-- The delivery queue: every accepted message until each recipient has a
-- final result. A queue row holds a reference to its body, so a body stays
-- on disk as long as a queue entry or a message points at it.
CREATE TABLE queue (
    id            INTEGER PRIMARY KEY,
    blob          BLOB NOT NULL REFERENCES blobs(hash),
    size          INTEGER NOT NULL,
    sender        TEXT NOT NULL,          -- '' for the null sender <>
    mail_params   TEXT NOT NULL DEFAULT '',
    client        TEXT NOT NULL DEFAULT '',
    helo          TEXT NOT NULL DEFAULT '',
    auth_user     TEXT NOT NULL DEFAULT '',
    created       INTEGER NOT NULL,
    next_attempt  INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX queue_due ON queue(next_attempt);

CREATE TABLE queue_recipients (
    id          INTEGER PRIMARY KEY,
    queue_id    INTEGER NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
    address     TEXT NOT NULL,
    params      TEXT NOT NULL DEFAULT '',
    state       TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'delivered', 'failed')),
    last_reply  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX queue_recipients_entry ON queue_recipients(queue_id);

CREATE TRIGGER queue_insert AFTER INSERT ON queue BEGIN
    UPDATE blobs SET refs = refs + 1 WHERE hash = NEW.blob;
END;

CREATE TRIGGER queue_delete AFTER DELETE ON queue BEGIN
    UPDATE blobs SET refs = refs - 1 WHERE hash = OLD.blob;
END;
