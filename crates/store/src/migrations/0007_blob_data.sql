-- 0007: inline bodies move from `blobs.data` (0006) into a table of their
-- own. `blobs` is a WITHOUT ROWID table, so its rows are the keys of its
-- b-tree: with a body in the row, every lookup by hash read whole bodies
-- (SQLite reads a key that overflows its page whole to compare it), the
-- reference count that every message insert and delete updates rewrote the
-- body, and the tree took about three times the bytes it held. Here the
-- hash index holds only hashes; a body is written once, read once by rowid,
-- and goes with its `blobs` row (ON DELETE CASCADE).
CREATE TABLE blob_data (
    hash BLOB PRIMARY KEY REFERENCES blobs(hash) ON DELETE CASCADE,
    data BLOB NOT NULL
);
INSERT INTO blob_data(hash, data) SELECT hash, data FROM blobs WHERE data IS NOT NULL;
ALTER TABLE blobs DROP COLUMN data;
