//! `keyfence fix` (being written).
