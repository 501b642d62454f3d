//! `keyfence init` and `keyfence secret ...` (STUB: the store work fills this in).

use super::Exit;
use crate::cli::{GlobalArgs, InitArgs, SecretCommand};
use anyhow::{Result, bail};

pub fn init(_g: &GlobalArgs, _args: &InitArgs) -> Result<Exit> {
    bail!("the store is not implemented yet")
}

pub fn run(_g: &GlobalArgs, _cmd: &SecretCommand) -> Result<Exit> {
    bail!("the store is not implemented yet")
}
