//! The project's tree as the audit sources and `keyfence scan` see it: walking it (parallel,
//! byte-oriented, binary and oversized files counted rather than read) and asking git which
//! files it tracks or ignores. Helpers of the sources, not sources: `src/audit/` holds one file
//! or folder per source id.

pub mod git;
pub mod walk;
