//! `keyfence fix` (STUB: being written).

use super::Exit;
use crate::cli::{FixArgs, GlobalArgs};
use anyhow::{Result, bail};

pub fn run(_g: &GlobalArgs, _args: &FixArgs) -> Result<Exit> {
    bail!("fix is not implemented yet")
}
