//! `package`: dependencies that run code at install time.

use super::{Context, Output};

pub fn audit(_ctx: &Context, _out: &mut Output) {}
