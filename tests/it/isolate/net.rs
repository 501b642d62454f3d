//! `run --net`: `none` stops TCP to a loopback server and UDP (DNS) alike (T6); `tcp:PORT`
//! lets TCP reach that port only. Run as root and as an ordinary user (who needs a user
//! namespace for the network namespace).

use crate::common::*;
use std::net::{TcpListener, UdpSocket};
use std::process::Command;

const PROBE: &str = r#"
import socket, sys
def tcp(port):
    s = socket.socket(); s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port)); return "ok"
    except OSError as e:
        return "err%d" % (e.errno or 0)
def dns(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
    try:
        # A DNS query for example.org, to a resolver the test listens as.
        q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03org\x00\x00\x01\x00\x01"
        s.sendto(q, ("127.0.0.1", port)); return "sent"
    except OSError as e:
        return "err%d" % (e.errno or 0)
a, b, u = (int(x) for x in sys.argv[1:4])
print("allowed=%s other=%s dns=%s" % (tcp(a), tcp(b), dns(u)))
"#;

fn probe(prefix: &[&str], net: &str, a: u16, b: u16, u: u16) -> String {
    let mut args: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
    args.extend([
        BIN.to_string(),
        "run".into(),
        "--net".into(),
        net.into(),
        "--".into(),
        "python3".into(),
        "-c".into(),
        PROBE.into(),
    ]);
    args.extend([a.to_string(), b.to_string(), u.to_string()]);
    let out = Command::new(&args[0])
        .args(&args[1..])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn net_none_and_tcp_ports() {
    let l1 = TcpListener::bind("127.0.0.1:0").unwrap();
    let l2 = TcpListener::bind("127.0.0.1:0").unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(std::time::Duration::from_millis(300)))
        .unwrap();
    let (a, b, u) = (
        l1.local_addr().unwrap().port(),
        l2.local_addr().unwrap().port(),
        udp.local_addr().unwrap().port(),
    );
    let drain = || {
        let mut buf = [0u8; 512];
        udp.recv_from(&mut buf).is_ok()
    };
    assert_eq!(probe(&[], "allow", a, b, u), "allowed=ok other=ok dns=sent");
    assert!(drain(), "the DNS query should arrive without restrictions");
    // 101 = ENETUNREACH: in the new namespace there is no usable interface at all.
    assert_eq!(
        probe(&[], "none", a, b, u),
        "allowed=err101 other=err101 dns=err101"
    );
    assert!(!drain(), "a DNS query escaped --net none");
    // 13 = EACCES from Landlock for the port not listed; UDP is not covered by tcp:.
    assert_eq!(
        probe(&[], &format!("tcp:{a}"), a, b, u),
        "allowed=ok other=err13 dns=sent"
    );
    if nix::unistd::geteuid().is_root() && std::path::Path::new("/usr/bin/setpriv").exists() {
        let nobody = [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ];
        assert_eq!(
            probe(&nobody, "none", a, b, u),
            "allowed=err101 other=err101 dns=err101"
        );
    }
    let fx = Fixture::new();
    let r = fx.run(&["run", "--net", "udp:53", "--", "true"], &[]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr.contains("expected allow, none, or tcp:PORT"),
        "{}",
        r.stderr
    );
}
