//! Starting a command with only the secrets it should have: the environment builder, in-place
//! exec, the supervisor with output masking, and the supervisor's self-protection.

pub mod env;
pub mod mask;
pub mod monitor;
pub mod process;
pub mod protect;
