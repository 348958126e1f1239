//! Which network addresses the gateway may connect to on someone else's behalf
//! (SSRF policy): address classes, CIDR blocks and the policy that combines them.
//! Pure logic; the connector that applies it at connect time lives in the proxy.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not a public unicast address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrClass {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// RFC 1918, carrier-grade NAT (100.64.0.0/10), IPv6 unique local (fc00::/7)
    /// and deprecated site-local (fec0::/10).
    Private,
    /// 169.254.0.0/16 (cloud metadata at 169.254.169.254), fe80::/10.
    LinkLocal,
    /// 0.0.0.0/8, ::.
    Unspecified,
    /// 224.0.0.0/4, ff00::/8, 255.255.255.255.
    Multicast,
    /// Documentation, benchmarking, 240.0.0.0/4 and other special-purpose blocks.
    Reserved,
}

impl AddrClass {
    pub fn describe(self) -> &'static str {
        match self {
            AddrClass::Loopback => "a loopback address",
            AddrClass::Private => "a private address",
            AddrClass::LinkLocal => "a link-local address (cloud metadata lives there)",
            AddrClass::Unspecified => "an unspecified address",
            AddrClass::Multicast => "a multicast or broadcast address",
            AddrClass::Reserved => "a reserved address",
        }
    }
}

/// The class of a non-public address; `None` for a public unicast one. IPv6 forms
/// that embed an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible,
/// NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by that IPv4 address.
pub fn classify(ip: IpAddr) -> Option<AddrClass> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddrClass> {
    let [a, b, c, _] = ip.octets();
    Some(if ip.is_loopback() {
        AddrClass::Loopback
    } else if ip.is_unspecified() || a == 0 {
        AddrClass::Unspecified
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        AddrClass::Private
    } else if ip.is_link_local() {
        AddrClass::LinkLocal
    } else if ip.is_multicast() || ip.is_broadcast() {
        AddrClass::Multicast
    } else if ip.is_documentation()
        || a >= 240
        || (a == 198 && (b == 18 || b == 19))
        || (a == 192 && b == 0 && c == 0)
    {
        AddrClass::Reserved
    } else {
        return None;
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddrClass> {
    let first = ip.segments()[0];
    Some(if ip.is_loopback() {
        AddrClass::Loopback
    } else if ip.is_unspecified() {
        AddrClass::Unspecified
    } else if ip.is_unique_local() || (first & 0xffc0) == 0xfec0 {
        AddrClass::Private
    } else if ip.is_unicast_link_local() {
        AddrClass::LinkLocal
    } else if ip.is_multicast() {
        AddrClass::Multicast
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        AddrClass::Reserved
    } else {
        return None;
    })
}

/// The IPv4 address an IPv6 address stands for, if it is one of the forms that
/// reach an IPv4 host.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    // IPv4-compatible (::a.b.c.d, deprecated), but not :: and ::1.
    if s[..6].iter().all(|&x| x == 0) && !(s[6] == 0 && s[7] <= 1) {
        return Some(tail);
    }
    // NAT64 well-known prefix 64:ff9b::/96.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|&x| x == 0) {
        return Some(tail);
    }
    // 6to4: 2002:AABB:CCDD::/48.
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

/// An address block such as `10.1.0.0/16` or `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an address block like 10.0.0.0/8 or fd00::/8")]
pub struct BadCidr(pub String);

impl std::str::FromStr for Cidr {
    type Err = BadCidr;
    fn from_str(s: &str) -> Result<Self, BadCidr> {
        let bad = || BadCidr(s.chars().take(64).collect());
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    /// Whether `ip` is in the block. An IPv4-mapped IPv6 address is compared as
    /// its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Where the gateway may connect on an agent's behalf. The default refuses every
/// non-public address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetPolicy {
    /// Loopback, private (RFC 1918, CGNAT, ULA) addresses are allowed. Link-local
    /// (cloud metadata), unspecified, multicast and reserved addresses are not;
    /// only `allowed` can open those.
    pub allow_private: bool,
    /// Blocks allowed whatever their class.
    pub allowed: Vec<Cidr>,
}

/// An address the policy refuses, with its class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{ip} is {} and refused by the gateway's SSRF policy", .class.describe())]
pub struct Refused {
    pub ip: IpAddr,
    pub class: AddrClass,
}

impl NetPolicy {
    /// Every address allowed (tests that need no policy).
    pub fn permissive() -> Self {
        NetPolicy {
            allow_private: true,
            allowed: vec![
                Cidr {
                    addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    prefix: 0,
                },
                Cidr {
                    addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                    prefix: 0,
                },
            ],
        }
    }

    pub fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        let Some(class) = classify(ip) else {
            return Ok(());
        };
        if self.allowed.iter().any(|c| c.contains(ip)) {
            return Ok(());
        }
        if self.allow_private && matches!(class, AddrClass::Loopback | AddrClass::Private) {
            return Ok(());
        }
        Err(Refused { ip, class })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::BROADCAST))
    }

    #[test]
    fn addresses_are_classified() {
        let cases = [
            ("127.0.0.1", Some(AddrClass::Loopback)),
            ("127.255.0.9", Some(AddrClass::Loopback)),
            ("::1", Some(AddrClass::Loopback)),
            ("10.1.2.3", Some(AddrClass::Private)),
            ("172.16.0.1", Some(AddrClass::Private)),
            ("172.31.255.255", Some(AddrClass::Private)),
            ("192.168.1.1", Some(AddrClass::Private)),
            ("100.64.0.1", Some(AddrClass::Private)),
            ("fd12:3456::1", Some(AddrClass::Private)),
            ("fc00::1", Some(AddrClass::Private)),
            ("169.254.169.254", Some(AddrClass::LinkLocal)),
            ("fe80::1", Some(AddrClass::LinkLocal)),
            ("0.0.0.0", Some(AddrClass::Unspecified)),
            ("0.1.2.3", Some(AddrClass::Unspecified)),
            ("::", Some(AddrClass::Unspecified)),
            ("224.0.0.1", Some(AddrClass::Multicast)),
            ("255.255.255.255", Some(AddrClass::Multicast)),
            ("ff02::1", Some(AddrClass::Multicast)),
            ("192.0.2.1", Some(AddrClass::Reserved)),
            ("240.0.0.1", Some(AddrClass::Reserved)),
            ("2001:db8::1", Some(AddrClass::Reserved)),
            // Embedded IPv4 forms are judged by their IPv4 address.
            ("::ffff:127.0.0.1", Some(AddrClass::Loopback)),
            ("::ffff:169.254.169.254", Some(AddrClass::LinkLocal)),
            ("::ffff:10.0.0.1", Some(AddrClass::Private)),
            ("::10.0.0.1", Some(AddrClass::Private)),
            ("64:ff9b::a9fe:a9fe", Some(AddrClass::LinkLocal)),
            ("2002:7f00:1::", Some(AddrClass::Loopback)),
            // Public.
            ("8.8.8.8", None),
            ("172.32.0.1", None),
            ("100.128.0.1", None),
            ("::ffff:8.8.8.8", None),
            ("2606:4700::1111", None),
        ];
        for (addr, want) in cases {
            assert_eq!(classify(ip(addr)), want, "{addr}");
        }
    }

    #[test]
    fn cidrs_parse_and_match() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap_or(Cidr {
            addr: ip("1.1.1.1"),
            prefix: 32,
        });
        assert!(net.contains(ip("10.1.200.3")));
        assert!(net.contains(ip("::ffff:10.1.0.1")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(!net.contains(ip("fd00::1")));
        let v6: Result<Cidr, _> = "fd00::/8".parse();
        assert!(v6.is_ok_and(|c| c.contains(ip("fd12::1")) && !c.contains(ip("fe80::1"))));
        let host: Result<Cidr, _> = "127.0.0.1".parse();
        assert!(host.is_ok_and(|c| c.contains(ip("127.0.0.1")) && !c.contains(ip("127.0.0.2"))));
        let all: Result<Cidr, _> = "0.0.0.0/0".parse();
        assert!(all.is_ok_and(|c| c.contains(ip("169.254.169.254"))));
        for bad in [
            "10.0.0.0/33",
            "fd00::/129",
            "x/8",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert_eq!(
            "10.1.0.0/16".parse::<Cidr>().map(|c| c.to_string()),
            Ok("10.1.0.0/16".to_owned())
        );
    }

    #[test]
    fn the_policy_refuses_by_default_and_opens_as_configured() {
        let deny = NetPolicy::default();
        assert!(deny.check(ip("93.184.216.34")).is_ok());
        for refused in [
            "127.0.0.1",
            "10.0.0.1",
            "169.254.169.254",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            assert!(deny.check(ip(refused)).is_err(), "{refused}");
        }
        let err = deny
            .check(ip("169.254.169.254"))
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("link-local")));

        let private = NetPolicy {
            allow_private: true,
            allowed: Vec::new(),
        };
        assert!(private.check(ip("127.0.0.1")).is_ok());
        assert!(private.check(ip("192.168.0.10")).is_ok());
        assert!(private.check(ip("fd00::1")).is_ok());
        // Metadata and unspecified stay closed unless listed.
        assert!(private.check(ip("169.254.169.254")).is_err());
        assert!(private.check(ip("0.0.0.0")).is_err());

        let listed = NetPolicy {
            allow_private: false,
            allowed: vec!["10.9.0.0/16".parse().unwrap_or(Cidr {
                addr: ip("1.1.1.1"),
                prefix: 32,
            })],
        };
        assert!(listed.check(ip("10.9.1.1")).is_ok());
        assert!(listed.check(ip("10.8.1.1")).is_err());
        assert!(NetPolicy::permissive().check(ip("169.254.169.254")).is_ok());
    }
}
