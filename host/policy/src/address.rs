//! Which resolved addresses a provider's requests may go to. Decided here, from the address the
//! name resolved to (never from the name alone: `evil.localhost` or a rebinding DNS name may
//! resolve anywhere), with the IANA special-purpose address registries (RFC 6890, through the
//! `iprfc` crate) as the classification:
//!
//! | addresses | refused |
//! |---|---|
//! | loopback (127.0.0.0/8, ::1) | unless the base URL names loopback |
//! | private: RFC 1918, shared 100.64.0.0/10, unique local fc00::/7 | unless `allow_private_network` |
//! | anything but loopback, over plain http | always (`allow_http` is for loopback only) |
//! | link-local (169.254.0.0/16 with the cloud metadata service, fe80::/10), multicast, broadcast, unspecified, documentation (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32, 3fff::/20), benchmarking (198.18.0.0/15, 2001:2::/48), and every other block of the registries (0.0.0.0/8, 192.0.0.0/24, 192.88.99.0/24, 240.0.0.0/4, 100::/64, 2001::/23, 2002::/16, ...) | always: no SCIM tenant lives there |
//!
//! An IPv4-mapped (`::ffff:a.b.c.d`) or NAT64 (`64:ff9b::/96`) address is judged by the IPv4
//! address it carries.

use iprfc::{IpNet, RFC6890};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What the provider's settings allow besides public addresses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddressRules {
    /// The base URL names loopback (`localhost`, 127.0.0.0/8, ::1).
    pub loopback_base: bool,
    /// `allow_private_network`.
    pub allow_private_network: bool,
    /// The request is plain http (possible only with `allow_http`, to a loopback base URL).
    pub plain_http: bool,
}

/// Why an address may not be reached; `kind()` names it in the conformance data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddressRefusal {
    /// Plain http carries the token in clear text: this machine only.
    PlainHttpNotLoopback,
    Loopback,
    PrivateNetwork,
    LinkLocal,
    Multicast,
    Broadcast,
    Unspecified,
    Documentation,
    Benchmarking,
    /// Another block of the special-purpose registries that no server is reached at.
    SpecialPurpose,
}

impl AddressRefusal {
    /// A kebab-case name, as the conformance data spells it.
    pub fn kind(self) -> &'static str {
        match self {
            AddressRefusal::PlainHttpNotLoopback => "plain-http-not-loopback",
            AddressRefusal::Loopback => "loopback",
            AddressRefusal::PrivateNetwork => "private-network",
            AddressRefusal::LinkLocal => "link-local",
            AddressRefusal::Multicast => "multicast",
            AddressRefusal::Broadcast => "broadcast",
            AddressRefusal::Unspecified => "unspecified",
            AddressRefusal::Documentation => "documentation",
            AddressRefusal::Benchmarking => "benchmarking",
            AddressRefusal::SpecialPurpose => "special-purpose",
        }
    }
}

impl fmt::Display for AddressRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressRefusal::PlainHttpNotLoopback => "not loopback, and plain http (allow_http) is for loopback only",
            AddressRefusal::Loopback => "loopback, but the base URL is not",
            AddressRefusal::PrivateNetwork => {
                "private network; set allow_private_network for an on-premises SCIM gateway"
            }
            AddressRefusal::LinkLocal => "link-local, where the cloud metadata service lives",
            AddressRefusal::Multicast => "multicast",
            AddressRefusal::Broadcast => "broadcast",
            AddressRefusal::Unspecified => "unspecified",
            AddressRefusal::Documentation => "reserved for documentation; no real server lives there",
            AddressRefusal::Benchmarking => "reserved for benchmarking networks",
            AddressRefusal::SpecialPurpose => "a special-purpose block (IANA registry, RFC 6890) no tenant lives in",
        })
    }
}

/// The IPv4 address an IPv4-mapped or NAT64 (well-known prefix) address carries, else the address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None if is_nat64(v6) => {
                let [.., a, b, c, d] = v6.octets();
                IpAddr::V4(Ipv4Addr::new(a, b, c, d))
            }
            None => ip,
        },
        v4 => v4,
    }
}

fn is_nat64(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
}

/// Why `ip` may not be reached under `rules`, if it may not.
pub fn address_refusal(ip: IpAddr, rules: AddressRules) -> Option<AddressRefusal> {
    let ip = canonical(ip);
    let loopback = iprfc::is_loopback_ip_addr(ip);
    if rules.plain_http && !loopback {
        return Some(AddressRefusal::PlainHttpNotLoopback);
    }
    if loopback {
        (!rules.loopback_base).then_some(AddressRefusal::Loopback)
    } else if iprfc::is_private_ip_addr(ip) || iprfc::is_shared_ip_addr(ip) {
        (!rules.allow_private_network).then_some(AddressRefusal::PrivateNetwork)
    } else if iprfc::is_link_local_ip_addr(ip) {
        Some(AddressRefusal::LinkLocal)
    } else if iprfc::is_multicast_ip_addr(ip) {
        Some(AddressRefusal::Multicast)
    } else if iprfc::is_broadcast_ip_addr(ip) {
        Some(AddressRefusal::Broadcast)
    } else if iprfc::is_unspecified_ip_addr(ip) {
        Some(AddressRefusal::Unspecified)
    } else if iprfc::is_documentation_ip_addr(ip) {
        Some(AddressRefusal::Documentation)
    } else if iprfc::is_benchmark_ip_addr(ip) {
        Some(AddressRefusal::Benchmarking)
    } else if RFC6890.ip_nets().iter().any(|block: &IpNet| block.contains(&ip)) {
        Some(AddressRefusal::SpecialPurpose)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC: AddressRules = AddressRules { loopback_base: false, allow_private_network: false, plain_http: false };

    fn refusal(text: &str, rules: AddressRules) -> Option<&'static str> {
        address_refusal(text.parse().unwrap(), rules).map(AddressRefusal::kind)
    }

    #[test]
    fn public_addresses_are_reached_and_special_ones_never() {
        for public in ["8.8.8.8", "104.129.192.1", "2606:4700::1111", "::ffff:104.129.192.1", "64:ff9b::808:808"] {
            assert_eq!(refusal(public, PUBLIC), None, "{public}");
        }
        for (address, kind) in [
            ("169.254.169.254", "link-local"),
            ("::ffff:169.254.169.254", "link-local"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("fe80::1", "link-local"),
            ("224.0.0.1", "multicast"),
            ("ff02::1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("198.51.100.1", "documentation"),
            ("2001:db8::1", "documentation"),
            ("3fff::1", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("240.0.0.1", "special-purpose"),
            ("0.1.2.3", "special-purpose"),
            ("2002:a9fe:a9fe::1", "special-purpose"),
        ] {
            let everything = AddressRules { loopback_base: true, allow_private_network: true, plain_http: false };
            assert_eq!(refusal(address, everything), Some(kind), "{address}");
        }
    }

    #[test]
    fn loopback_private_and_plain_http_need_their_settings() {
        assert_eq!(refusal("127.0.0.1", PUBLIC), Some("loopback"));
        assert_eq!(refusal("127.0.0.1", AddressRules { loopback_base: true, ..PUBLIC }), None);
        for private in ["10.0.0.1", "172.16.5.4", "192.168.1.1", "100.64.0.1", "fd00::1"] {
            assert_eq!(refusal(private, PUBLIC), Some("private-network"), "{private}");
            assert_eq!(refusal(private, AddressRules { allow_private_network: true, ..PUBLIC }), None, "{private}");
        }
        let plain = AddressRules { loopback_base: true, allow_private_network: true, plain_http: true };
        assert_eq!(refusal("::1", plain), None);
        assert_eq!(refusal("10.0.0.1", plain), Some("plain-http-not-loopback"));
        assert_eq!(refusal("8.8.8.8", plain), Some("plain-http-not-loopback"));
    }
}
