-- 0001: domains, accounts, aliases, lists, groups, mailboxes, messages, blobs.
-- Addresses are stored as (domain_id, local part in lower case).

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE domains (
    id               INTEGER PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    enabled          INTEGER NOT NULL DEFAULT 1,
    catch_all        TEXT,
    plus_separator   TEXT,
    greylisting      INTEGER NOT NULL DEFAULT 0,
    max_total_size   INTEGER,
    max_message_size INTEGER,
    max_account_size INTEGER,
    max_accounts     INTEGER,
    max_aliases      INTEGER,
    max_lists        INTEGER,
    created          INTEGER NOT NULL
);

CREATE TABLE domain_aliases (
    name      TEXT PRIMARY KEY,
    domain_id INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX domain_aliases_domain ON domain_aliases(domain_id);

CREATE TABLE accounts (
    id            INTEGER PRIMARY KEY,
    domain_id     INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    local_part    TEXT NOT NULL,
    display_local TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    quota_bytes   INTEGER NOT NULL DEFAULT 0,
    used_bytes    INTEGER NOT NULL DEFAULT 0,
    admin_level   INTEGER NOT NULL DEFAULT 0,
    enabled       INTEGER NOT NULL DEFAULT 1,
    first_name    TEXT NOT NULL DEFAULT '',
    last_name     TEXT NOT NULL DEFAULT '',
    last_logon    INTEGER,
    created       INTEGER NOT NULL,
    UNIQUE (domain_id, local_part)
);

CREATE TABLE aliases (
    id         INTEGER PRIMARY KEY,
    domain_id  INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    local_part TEXT NOT NULL,
    target     TEXT NOT NULL,
    enabled    INTEGER NOT NULL DEFAULT 1,
    UNIQUE (domain_id, local_part)
);

CREATE TABLE lists (
    id           INTEGER PRIMARY KEY,
    domain_id    INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    local_part   TEXT NOT NULL,
    mode         INTEGER NOT NULL DEFAULT 0,   -- 0 public, 1 members only, 2 announcement
    announcer    TEXT,                          -- mode 2: the one address that may post
    require_auth INTEGER NOT NULL DEFAULT 0,
    enabled      INTEGER NOT NULL DEFAULT 1,
    UNIQUE (domain_id, local_part)
);

CREATE TABLE list_members (
    list_id INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
    address TEXT NOT NULL,                      -- lower case
    PRIMARY KEY (list_id, address)
) WITHOUT ROWID;

CREATE TABLE groups (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE group_members (
    group_id   INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, account_id)
) WITHOUT ROWID;
CREATE INDEX group_members_account ON group_members(account_id);

CREATE TABLE mailboxes (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id     INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    special_use    TEXT,
    subscribed     INTEGER NOT NULL DEFAULT 1,
    uidvalidity    INTEGER NOT NULL,
    uidnext        INTEGER NOT NULL DEFAULT 1,
    highest_modseq INTEGER NOT NULL DEFAULT 1,
    created        INTEGER NOT NULL,
    UNIQUE (account_id, name)
);

-- One row per distinct body file; refs counts message rows and holds.
CREATE TABLE blobs (
    hash BLOB PRIMARY KEY,
    size INTEGER NOT NULL,
    refs INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX blobs_unreferenced ON blobs(refs) WHERE refs <= 0;

CREATE TABLE messages (
    mailbox_id    INTEGER NOT NULL REFERENCES mailboxes(id),
    uid           INTEGER NOT NULL,
    modseq        INTEGER NOT NULL,
    flags         INTEGER NOT NULL DEFAULT 0,
    keywords      TEXT NOT NULL DEFAULT '',
    internal_date INTEGER NOT NULL,
    size          INTEGER NOT NULL,
    blob          BLOB NOT NULL REFERENCES blobs(hash),
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);
CREATE INDEX messages_blob ON messages(blob);

-- Expunged UIDs with the modseq of their expunge (CONDSTORE/QRESYNC VANISHED).
CREATE TABLE expunged (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid        INTEGER NOT NULL,
    modseq     INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;

-- Quota usage and blob reference counts follow the message rows exactly,
-- whatever statement adds or removes them.
CREATE TRIGGER messages_insert AFTER INSERT ON messages BEGIN
    UPDATE blobs SET refs = refs + 1 WHERE hash = NEW.blob;
    UPDATE accounts SET used_bytes = used_bytes + NEW.size
        WHERE id = (SELECT account_id FROM mailboxes WHERE id = NEW.mailbox_id);
END;

CREATE TRIGGER messages_delete AFTER DELETE ON messages BEGIN
    UPDATE blobs SET refs = refs - 1 WHERE hash = OLD.blob;
    UPDATE accounts SET used_bytes = used_bytes - OLD.size
        WHERE id = (SELECT account_id FROM mailboxes WHERE id = OLD.mailbox_id);
END;
