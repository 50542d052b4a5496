-- 0006: small bodies live in their blobs row instead of a file. A body
-- written this way is durable with the transaction that references it (the
-- queue entry of an accepted message), which costs one WAL commit instead
-- of a file creation, two syncs and a rename. NULL: the body is a file.
ALTER TABLE blobs ADD COLUMN data BLOB;
