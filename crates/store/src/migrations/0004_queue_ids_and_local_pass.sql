-- 0004: queue ids are never given twice (logs, `250` replies and
-- `ironpost queue` name them, so a reused id would point at the wrong
-- message), and the local delivery pass marks the entries it is done with,
-- so that entries left waiting for remote delivery are not read again at
-- every pass.
CREATE TABLE queue_ids (last INTEGER NOT NULL);
INSERT INTO queue_ids(last) SELECT coalesce(max(id), 0) FROM queue;
ALTER TABLE queue ADD COLUMN local_done INTEGER NOT NULL DEFAULT 0;
