//! The sandbox's mount namespace: what Landlock cannot say. Landlock rights are inherited
//! downward and unioned, so once the project is writable (npm creates `node_modules` and
//! replaces `package-lock.json` through a temp file in it) so is its `.git`; and Landlock (ABI
//! 7) does not control connecting to a unix socket by path. So before Landlock, keyfence
//! enters a private mount namespace (for an ordinary user, through a user namespace that maps
//! the user to itself: the command keeps its uid and has no capabilities after its `execve`)
//! and there
//! - bind-mounts each path to keep (`.git`, a `PATH` directory under a writable root)
//!   read-only over itself; renaming or removing a mount point fails with EBUSY, so it cannot be
//!   swapped for a planted one either, and
//! - bind-mounts `/dev/null` over each agent socket, so a connect is refused, and
//! - hides each path the profile denies reading (`run/deny_read.rs`): a file behind `/dev/null`
//!   remounted read-only and `nodev`, so opening it fails with EACCES as a Landlock denial
//!   does, and a directory behind an empty read-only tmpfs. Landlock cannot do this inside a
//!   tree the command writes: its rights are inherited downward, so denying `./.env` leaves the
//!   project directory with listing rights only, and npm could then create nothing in it.
//!
//! Landlock then forbids the sandboxed tree every mount, unmount and remount (a documented
//! limit of Landlock domains), root included; a user namespace it creates itself gets the
//! mounts locked and cannot separate or unlock them (mount_namespaces(7)). Nothing here
//! changes anything outside the namespace.

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::statvfs::{FsFlags, statvfs};
use nix::unistd::{getegid, geteuid};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error(
        "hiding or keeping read-only {what} needs a mount namespace, and this user cannot \
         create one ({source})\nhint: `keyfence doctor` shows whether user namespaces are \
         available"
    )]
    Namespace { what: String, source: nix::Error },
    #[error("the sandbox cannot map this user into its namespace: {0}")]
    Map(std::io::Error),
    #[error("the sandbox cannot make {path} read-only: {source}")]
    Mount { path: PathBuf, source: nix::Error },
    #[error("cannot hide {path} from the command: {source}")]
    Hide { path: PathBuf, source: nix::Error },
}

/// What was done.
#[derive(Debug, Default)]
pub struct Mounted {
    pub read_only: Vec<PathBuf>,
    pub hidden: Vec<PathBuf>,
    /// The paths denied reading, hidden.
    pub denied: Vec<PathBuf>,
}

/// The mount points that keep `read_only` unwritable beneath the writable roots (paths
/// outside every writable root need none: Landlock keeps them read-only). A path deep in a
/// writable root is covered by mounting its top directory below that root, since the
/// directory above a mount point can still be renamed away and replaced; unless that top
/// directory holds another writable root (the project under /tmp), then the path itself.
pub fn targets(read_only: &[PathBuf], writable: &[PathBuf]) -> Vec<PathBuf> {
    let writable: Vec<PathBuf> = writable
        .iter()
        .filter_map(|w| w.canonicalize().ok())
        .collect();
    let mut out: Vec<PathBuf> = Vec::new();
    for p in read_only {
        let Ok(p) = p.canonicalize() else { continue };
        // The most specific writable root holding p.
        let Some(root) = writable
            .iter()
            .filter(|w| p.starts_with(w))
            .max_by_key(|w| w.components().count())
        else {
            continue;
        };
        let top = match p
            .strip_prefix(root)
            .ok()
            .and_then(|r| r.components().next())
        {
            Some(c) => root.join(c),
            None => p.clone(),
        };
        let holds_root = writable.iter().any(|w| w != &top && w.starts_with(&top));
        out.push(if holds_root { p } else { top });
    }
    out.sort();
    out.dedup();
    // A mount beneath another read-only one adds nothing.
    let all = out.clone();
    out.retain(|t| !all.iter().any(|o| o != t && t.starts_with(o)));
    out
}

/// Enters a private mount namespace and applies the mounts: `read_only` kept so, the sockets of
/// `hidden` and the paths of `denied` hidden.
pub fn enter(
    read_only: &[PathBuf],
    hidden: &[PathBuf],
    denied: &[PathBuf],
) -> Result<Mounted, MountError> {
    let mut done = Mounted::default();
    if read_only.is_empty() && hidden.is_empty() && denied.is_empty() {
        return Ok(done);
    }
    let what = read_only
        .iter()
        .chain(hidden)
        .chain(denied)
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    new_namespace().map_err(|source| MountError::Namespace { what, source })?;
    // Nothing done here may reach the parent namespace.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|source| MountError::Mount {
        path: "/".into(),
        source,
    })?;
    for p in read_only {
        bind_read_only(p).map_err(|source| MountError::Mount {
            path: p.clone(),
            source,
        })?;
        done.read_only.push(p.clone());
    }
    for s in hidden {
        // A socket that went away since it was listed needs nothing.
        match mount(
            Some("/dev/null"),
            s.as_path(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        ) {
            Ok(()) => done.hidden.push(s.clone()),
            Err(nix::Error::ENOENT) => {}
            Err(source) => {
                return Err(MountError::Mount {
                    path: s.clone(),
                    source,
                });
            }
        }
    }
    // Last: a read-only bind above a denied path copies the mounts beneath it as they are.
    for p in denied {
        match hide(p) {
            Ok(()) => done.denied.push(p.clone()),
            // Gone since it was listed: nothing left to read.
            Err(nix::Error::ENOENT) => {}
            Err(source) => {
                return Err(MountError::Hide {
                    path: p.clone(),
                    source,
                });
            }
        }
    }
    Ok(done)
}

/// Hides `p` from every process of this namespace. The mount lands where `p` leads (a link's
/// target), cannot be renamed or removed (EBUSY), and a hard link to it made here would be to
/// the mount's file (EXDEV). What keeps the command from unmounting it: it has no capability
/// after its exec in the user namespace mapped to itself, and a Landlock domain (the
/// sandbox's, guard's fence, or `seal`) forbids unmounting to root as well.
fn hide(p: &Path) -> nix::Result<()> {
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if std::fs::metadata(p)
        .map_err(|e| nix::Error::from_raw(e.raw_os_error().unwrap_or(0)))?
        .is_dir()
    {
        // Empty, read-only, and owned by nobody the command could become.
        return mount(
            Some("keyfence"),
            p,
            Some("tmpfs"),
            flags,
            Some("size=4k,nr_inodes=1,mode=0500"),
        );
    }
    mount(
        Some("/dev/null"),
        p,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )?;
    // `nodev`: opening the device fails, for reading and for writing (a write to a hidden
    // `.env` would otherwise vanish into /dev/null). Flags /dev's mount already has are kept,
    // as a remount inside a user namespace must.
    mount(
        None::<&str>,
        p,
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | flags | kept_flags(p)?,
        None::<&str>,
    )
}

/// The other paths at which `paths` show, through another mount of their filesystem (a bind
/// mount of the project at a second place, as dev containers make): hiding a file at one
/// mount point leaves it readable at the others, so these are hidden too. From this process's
/// `/proc/self/mountinfo`; none when it cannot be read.
pub fn also_at(paths: &[PathBuf]) -> Vec<PathBuf> {
    if paths.is_empty() {
        return Vec::new();
    }
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mounts = parse_mountinfo(&text);
    use std::os::unix::fs::MetadataExt;
    let inode = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let mut out: Vec<PathBuf> = paths
        .iter()
        .filter_map(|p| p.canonicalize().ok())
        .flat_map(|p| {
            let same = inode(&p);
            // Only where the same file shows: a mount over the other place shows another.
            other_paths(&p, &mounts)
                .into_iter()
                .filter(move |alt| same.is_some() && inode(alt) == same)
        })
        .filter(|alt| !paths.contains(alt))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// One line of mountinfo: the filesystem (major:minor), the path within it that is mounted
/// (`root`), and where.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MountLine {
    dev: String,
    root: PathBuf,
    at: PathBuf,
}

fn parse_mountinfo(text: &str) -> Vec<MountLine> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(' ').skip(2);
            Some(MountLine {
                dev: f.next()?.to_string(),
                root: PathBuf::from(unescape(f.next()?)),
                at: PathBuf::from(unescape(f.next()?)),
            })
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(c as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Where else the (canonical) path `p` shows: the mount holding it is the last listed with
/// the longest mount point above it (a later mount on the same point covers an earlier one);
/// every other mount of the same filesystem whose root holds `p`'s place in it shows it too.
fn other_paths(p: &Path, mounts: &[MountLine]) -> Vec<PathBuf> {
    let Some(home) = mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| p.starts_with(&m.at))
        .max_by_key(|(i, m)| (m.at.components().count(), *i))
        .map(|(_, m)| m)
    else {
        return Vec::new();
    };
    let Ok(below) = p.strip_prefix(&home.at) else {
        return Vec::new();
    };
    let in_fs = home.root.join(below);
    mounts
        .iter()
        .filter(|m| m.dev == home.dev && m.at != home.at)
        .filter_map(|m| Some(m.at.join(in_fs.strip_prefix(&m.root).ok()?)))
        .filter(|alt| alt != p)
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("Landlock: {0}")]
    Landlock(#[from] landlock::RulesetError),
    #[error(
        "the kernel does not enforce Landlock, so the command could unmount what hides {0} or \
         reach it through another process's /proc/PID/root; refusing to run with it readable\n\
         hint: `keyfence doctor` shows what the kernel offers"
    )]
    NotEnforced(String),
}

/// Seals the hidden paths when neither the sandbox nor guard's fence puts the command in a
/// Landlock domain: a domain that handles only making block devices (which nobody's build
/// needs) but, as every domain does, forbids mounting and unmounting, to root too, and reading
/// another process's `/proc/PID/root` outside it (the user's shell's would lead around this
/// namespace to the hidden files). `what` names the hidden paths for the error.
pub fn seal(what: &str) -> Result<(), SealError> {
    use landlock::{AccessFs, Ruleset, RulesetAttr, RulesetStatus};
    let status = Ruleset::default()
        .handle_access(AccessFs::MakeBlock)?
        .create()?
        .restrict_self()?;
    if status.ruleset == RulesetStatus::NotEnforced {
        return Err(SealError::NotEnforced(what.to_string()));
    }
    Ok(())
}

fn new_namespace() -> nix::Result<()> {
    // Root, or already inside a user namespace of our own (`--net none`): a mount namespace
    // alone.
    if unshare(CloneFlags::CLONE_NEWNS).is_ok() {
        return Ok(());
    }
    let (uid, gid) = (geteuid(), getegid());
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)?;
    // Map the user to itself (not to 0): files keep their owner and the command has no
    // capabilities once it runs. user_namespaces(7): setgroups must be denied first.
    let write = |f: &str, s: String| std::fs::write(f, s).map_err(|_| nix::Error::EPERM);
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
    write("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
    Ok(())
}

fn bind_read_only(p: &Path) -> nix::Result<()> {
    mount(
        Some(p),
        p,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )?;
    let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | kept_flags(p)?;
    mount(None::<&str>, p, None::<&str>, flags, None::<&str>)
}

/// The flags of the mount at `p` that a remount inside a user namespace must keep (nosuid,
/// nodev, noexec, atime), or the kernel refuses it.
fn kept_flags(p: &Path) -> nix::Result<MsFlags> {
    let kept = statvfs(p)?.flags();
    let mut flags = MsFlags::empty();
    for (f, m) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
    ] {
        if kept.contains(f) {
            flags |= m;
        }
    }
    // ST_RELATIME by its value (include/linux/statfs.h): nix names it for glibc only, and the
    // static release build links musl.
    const ST_RELATIME: nix::libc::c_ulong = 0x1000;
    if kept.bits() & ST_RELATIME != 0 {
        flags |= MsFlags::MS_RELATIME;
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_shows_at_every_mount_of_its_filesystem_whose_root_holds_it() {
        let mounts = parse_mountinfo(
            "27 1 254:0 / / rw - ext4 /dev/vda rw\n\
             40 27 254:0 /home/u/proj /workspaces/my\\040proj rw - ext4 /dev/vda rw\n\
             41 27 254:0 /home/u/other /mnt/other rw - ext4 /dev/vda rw\n\
             42 27 0:40 / /home/u/proj/cache rw - tmpfs tmpfs rw\n\
             43 27 254:0 /home/u /srv/homes/u rw - ext4 /dev/vda rw\n",
        );
        let env = Path::new("/home/u/proj/.env");
        assert_eq!(
            other_paths(env, &mounts),
            [
                PathBuf::from("/workspaces/my proj/.env"),
                PathBuf::from("/srv/homes/u/proj/.env")
            ]
        );
        // Reached through the bind, the file is found at its first path too.
        assert_eq!(
            other_paths(Path::new("/workspaces/my proj/.env"), &mounts),
            [
                PathBuf::from("/home/u/proj/.env"),
                PathBuf::from("/srv/homes/u/proj/.env")
            ]
        );
        // Another filesystem mounted inside the project: only its own mounts count.
        assert!(other_paths(Path::new("/home/u/proj/cache/x"), &mounts).is_empty());
    }

    #[test]
    fn targets_cover_the_top_directory_below_a_writable_root() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        for d in [
            "proj/.git/hooks",
            "proj/node_modules/.bin",
            "tmp/tools/bin",
            "tmp/p2/x",
        ] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        std::fs::create_dir_all(base.join("tmp/p2/.git")).unwrap();
        let writable = [base.join("proj"), base.join("tmp"), base.join("tmp/p2/x")];
        let t = targets(
            &[
                base.join("proj/.git"),
                base.join("tmp/tools/bin"),
                base.join("tmp/p2/.git"),
                base.join("elsewhere"),
                base.join("proj/.git/hooks"),
            ],
            &writable,
        );
        assert_eq!(
            t,
            [
                base.join("proj/.git"),
                // Its parent holds the project: only the path itself.
                base.join("tmp/p2/.git"),
                // The top below /tmp, so tools/ cannot be renamed away and replaced.
                base.join("tmp/tools"),
            ]
        );
    }
}
