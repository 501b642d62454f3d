//! Starting a command with only the secrets it should have: the settings `run` acts on, the
//! environment builder, in-place exec, the supervisor with output masking, the sandbox's
//! end-of-run notes, and the supervisor's self-protection.

pub mod deny_read;
pub mod env;
pub mod mask;
pub mod monitor;
pub mod process;
pub mod protect;
pub mod sandbox;
pub mod settings;
