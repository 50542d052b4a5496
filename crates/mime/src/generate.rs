//! Generated messages (M-3).
