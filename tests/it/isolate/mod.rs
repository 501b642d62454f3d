//! The install sandbox, `run --sandbox` and `run --net`.

mod install;
mod net;
mod sandbox;
