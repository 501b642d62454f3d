//! `keyfence setup ...` (STUB: being written).

use super::Exit;
use crate::cli::{GlobalArgs, SetupCommand};
use anyhow::{Result, bail};

pub fn run(_g: &GlobalArgs, _cmd: &SetupCommand) -> Result<Exit> {
    bail!("setup is not implemented yet")
}
