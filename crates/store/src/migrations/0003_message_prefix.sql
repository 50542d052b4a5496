-- 0003: a header prefix per message row. One body blob serves every local
-- recipient of a message, but some header fields belong to one delivery
-- alone (`Delivered-To:`, SPEC Q-2). They are kept here and read in front of
-- the blob; `size` counts both, so the quota triggers of 0001 charge them.
ALTER TABLE messages ADD COLUMN prefix BLOB NOT NULL DEFAULT x'';
