//! The report formats over one fixed fixture (insta snapshots).

mod snapshots;
