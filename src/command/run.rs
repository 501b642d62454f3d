//! `keyfence run` (STUB).

use super::Exit;
use crate::cli::{GlobalArgs, RunArgs};
use anyhow::{Result, bail};

pub fn run(_g: &GlobalArgs, _args: &RunArgs) -> Result<Exit> {
    bail!("run is not implemented yet")
}
