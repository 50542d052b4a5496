//! Byte-exact edits (M-2).
