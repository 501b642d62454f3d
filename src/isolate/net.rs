//! `run --net`: `none` puts keyfence (and so the command) in a new network namespace with only
//! a loopback that is down, which stops TCP, UDP and DNS alike; `tcp:PORT,...` lets TCP connect
//! only to those ports through Landlock (ABI 4+; UDP and DNS are not covered by it, and the
//! help says so).

use landlock::{
    AccessNet, CompatLevel, Compatible, NetPort, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus,
};
use nix::sched::{CloneFlags, unshare};
use nix::unistd::{getegid, geteuid};

pub use crate::policy::net::NetPolicy;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(
        "--net none needs a new network namespace, and this user cannot create one ({0}); \
         refusing to run with the network on\nhint: `keyfence doctor` shows what the kernel offers"
    )]
    Namespace(nix::Error),
    #[error("--net none: cannot map this user into its namespace: {0}")]
    Map(std::io::Error),
    #[error("Landlock: {0}")]
    Landlock(#[from] landlock::RulesetError),
    #[error(
        "--net tcp:... needs Landlock network rules (ABI 4, Linux 6.7); refusing to run with the \
         network unrestricted\nhint: use --net none"
    )]
    NotEnforced,
}

/// Cuts this process (and so what it starts) off every network.
pub fn enter_none() -> Result<(), NetError> {
    if geteuid().is_root() {
        return unshare(CloneFlags::CLONE_NEWNET).map_err(NetError::Namespace);
    }
    // Already in a user namespace of its own (the sandbox's mount namespace), keyfence holds
    // the capability there: a network namespace alone. A nested user namespace could not map
    // the user again.
    if unshare(CloneFlags::CLONE_NEWNET).is_ok() {
        return Ok(());
    }
    // An unprivileged user needs a user namespace to own the network namespace. Map the user
    // to itself so files keep their owner (user_namespaces(7): setgroups must be denied first).
    let (uid, gid) = (geteuid(), getegid());
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET).map_err(NetError::Namespace)?;
    std::fs::write("/proc/self/setgroups", "deny").map_err(NetError::Map)?;
    std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1")).map_err(NetError::Map)?;
    std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1")).map_err(NetError::Map)?;
    Ok(())
}

/// Lets TCP connect only to `ports`.
pub fn restrict_tcp(ports: &[u16]) -> Result<(), NetError> {
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessNet::ConnectTcp)?
        .create()?;
    for &p in ports {
        ruleset = ruleset.add_rule(NetPort::new(p, AccessNet::ConnectTcp))?;
    }
    let status = ruleset.restrict_self()?;
    if status.ruleset == RulesetStatus::NotEnforced {
        return Err(NetError::NotEnforced);
    }
    Ok(())
}
