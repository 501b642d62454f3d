//! The network a command may use: `allow`, `none`, or `tcp:PORT,...`. A policy value, not an
//! isolation mechanism (that is `isolate::net`), so profiles can hold and combine it on every
//! platform.

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum NetPolicy {
    Allow,
    None,
    TcpPorts(Vec<u16>),
}

impl std::str::FromStr for NetPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "allow" => Ok(NetPolicy::Allow),
            "none" => Ok(NetPolicy::None),
            _ => {
                let ports = s.strip_prefix("tcp:").ok_or_else(|| {
                    format!("'{s}': expected allow, none, or tcp:PORT,... (e.g. tcp:443,80)")
                })?;
                let ports: Result<Vec<u16>, _> =
                    ports.split(',').map(|p| p.trim().parse::<u16>()).collect();
                match ports {
                    Ok(p) if !p.is_empty() && !p.contains(&0) => Ok(NetPolicy::TcpPorts(p)),
                    _ => Err(format!(
                        "'{s}': ports must be numbers from 1 to 65535, comma-separated"
                    )),
                }
            }
        }
    }
}

impl TryFrom<String> for NetPolicy {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl std::fmt::Display for NetPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetPolicy::Allow => f.write_str("allow"),
            NetPolicy::None => f.write_str("none"),
            NetPolicy::TcpPorts(ports) => {
                let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
                write!(f, "tcp:{}", ports.join(","))
            }
        }
    }
}

impl NetPolicy {
    /// What both allow: the stricter of the two, and for two port lists the ports in both
    /// (none in common is no network). A setting can only ever narrow another.
    pub fn stricter(&self, other: &NetPolicy) -> NetPolicy {
        match (self, other) {
            (NetPolicy::None, _) | (_, NetPolicy::None) => NetPolicy::None,
            (NetPolicy::Allow, o) | (o, NetPolicy::Allow) => o.clone(),
            (NetPolicy::TcpPorts(a), NetPolicy::TcpPorts(b)) => {
                let both: Vec<u16> = a.iter().copied().filter(|p| b.contains(p)).collect();
                if both.is_empty() {
                    NetPolicy::None
                } else {
                    NetPolicy::TcpPorts(both)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!("none".parse::<NetPolicy>(), Ok(NetPolicy::None));
        assert_eq!(
            "tcp:443, 80".parse::<NetPolicy>(),
            Ok(NetPolicy::TcpPorts(vec![443, 80]))
        );
        assert!("tcp:".parse::<NetPolicy>().is_err());
        assert!("tcp:0".parse::<NetPolicy>().is_err());
        assert!("tcp:99999".parse::<NetPolicy>().is_err());
        assert!(
            "udp:53"
                .parse::<NetPolicy>()
                .unwrap_err()
                .contains("expected allow, none")
        );
        assert_eq!(NetPolicy::TcpPorts(vec![443, 80]).to_string(), "tcp:443,80");
    }

    #[test]
    fn stricter_never_widens() {
        let p = |s: &str| s.parse::<NetPolicy>().unwrap();
        let cases = [
            ("allow", "allow", "allow"),
            ("allow", "none", "none"),
            ("none", "allow", "none"),
            ("allow", "tcp:443", "tcp:443"),
            ("tcp:443", "allow", "tcp:443"),
            ("tcp:443,80", "tcp:80,22", "tcp:80"),
            ("tcp:443", "tcp:22", "none"),
            ("tcp:443", "none", "none"),
        ];
        for (a, b, want) in cases {
            assert_eq!(p(a).stricter(&p(b)), p(want), "{a} + {b}");
        }
    }
}
