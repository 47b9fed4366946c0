//! Network values a peer carries: allowed-IP prefixes (CIDR, v4 and v6) and endpoints (`ip:port`, `[ip6]:port`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::packed::{Packable, Packed};
use crate::text::AppendText;

/// An IPv4 or IPv6 prefix such as `10.8.0.0/24` or `fd00::/64`, with no host bits set.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    address: IpAddr,
    prefix_len: u8,
}

/// Why a string is not an allowed-IP prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{input:?} is not an IPv4 or IPv6 address")]
    BadAddress { input: String },
    #[error("prefix length in {input:?} must be a number from 0 to {max}")]
    BadPrefixLength { input: String, max: u8 },
    #[error("{input:?} has host bits set; the network is {network}")]
    HostBitsSet { input: String, network: String },
}

impl Cidr {
    /// Builds a prefix, refusing host bits beyond the prefix length.
    pub fn new(address: IpAddr, prefix_len: u8) -> Result<Self, CidrError> {
        let max = max_prefix_len(address);
        if prefix_len > max {
            return Err(CidrError::BadPrefixLength { input: format!("{address}/{prefix_len}"), max });
        }
        let network = Self { address: mask(address, prefix_len), prefix_len };
        if network.address != address {
            return Err(CidrError::HostBitsSet {
                input: format!("{address}/{prefix_len}"),
                network: network.to_string(),
            });
        }
        Ok(network)
    }

    pub const fn address(&self) -> IpAddr {
        self.address
    }

    pub const fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The prefix of `prefix_len` bits that contains `address`.
    pub fn containing(address: IpAddr, prefix_len: u8) -> Self {
        let prefix_len = prefix_len.min(max_prefix_len(address));
        Self { address: mask(address, prefix_len), prefix_len }
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        address.is_ipv4() == self.address.is_ipv4() && mask(address, self.prefix_len) == self.address
    }
}

fn max_prefix_len(address: IpAddr) -> u8 {
    if address.is_ipv4() { 32 } else { 128 }
}

fn mask(address: IpAddr, prefix_len: u8) -> IpAddr {
    let host_bits = u32::from(max_prefix_len(address) - prefix_len);
    match address {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(
            u32::from(v4).checked_shr(host_bits).unwrap_or(0).checked_shl(host_bits).unwrap_or(0),
        )),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(
            u128::from(v6).checked_shr(host_bits).unwrap_or(0).checked_shl(host_bits).unwrap_or(0),
        )),
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// Accepts `address/len`, or a bare address meaning a single host (as `wg set` does).
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let (address_text, prefix_text) = match input.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (input, None),
        };
        let address: IpAddr = address_text.parse().map_err(|_| CidrError::BadAddress { input: input.to_owned() })?;
        let max = max_prefix_len(address);
        let prefix_len = match prefix_text {
            None => max,
            Some(text) => text
                .parse::<u8>()
                .ok()
                .filter(|len| *len <= max && text.bytes().all(|digit| digit.is_ascii_digit()))
                .ok_or_else(|| CidrError::BadPrefixLength { input: input.to_owned(), max })?,
        };
        Self::new(address, prefix_len).map_err(|error| match error {
            CidrError::HostBitsSet { network, .. } => CidrError::HostBitsSet { input: input.to_owned(), network },
            other => other,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.address {
            IpAddr::V4(address) => write_v4_and_number(f, address, b'/', self.prefix_len.into()),
            IpAddr::V6(address) => write!(f, "{address}/{}", self.prefix_len),
        }
    }
}

impl AppendText for Cidr {
    fn append_text(&self, out: &mut Vec<u8>) {
        match self.address {
            IpAddr::V4(address) => append_v4_and_number(out, address, b'/', self.prefix_len.into()),
            IpAddr::V6(_) => append_display(out, self),
        }
    }
}

/// Writes `a.b.c.d`, `separator` and `number` as `Display` of the standard types would, but put
/// together on the stack and written at once instead of through the formatting machinery a piece
/// at a time (a `to_string` then allocates once, at the right size): a page of 100 peers writes
/// hundreds of endpoints and prefixes.
fn write_v4_and_number(f: &mut fmt::Formatter<'_>, address: Ipv4Addr, separator: u8, number: u16) -> fmt::Result {
    let (text, length) = v4_and_number(address, separator, number);
    f.write_str(std::str::from_utf8(&text[..length]).map_err(|_| fmt::Error)?)
}

/// [`write_v4_and_number`] appended to a byte buffer.
fn append_v4_and_number(out: &mut Vec<u8>, address: Ipv4Addr, separator: u8, number: u16) {
    let (text, length) = v4_and_number(address, separator, number);
    out.extend_from_slice(&text[..length]);
}

/// Text the formatting machinery writes for the rare values (IPv6), appended to a byte buffer.
fn append_display(out: &mut Vec<u8>, value: &impl fmt::Display) {
    use std::io::Write;
    // writing to a vector cannot fail
    let _ = write!(out, "{value}");
}

/// The text of `a.b.c.d`, `separator` and `number`, and its length.
fn v4_and_number(address: Ipv4Addr, separator: u8, number: u16) -> ([u8; 21], usize) {
    // "255.255.255.255:65535"
    let mut text = [0u8; 21];
    let mut length = 0;
    let mut push_decimal = |byte_before: Option<u8>, value: u16| {
        if let Some(byte) = byte_before {
            text[length] = byte;
            length += 1;
        }
        let digits = value.checked_ilog10().unwrap_or(0) as usize + 1;
        let mut rest = value;
        for place in (length..length + digits).rev() {
            text[place] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        length += digits;
    };
    for (index, octet) in address.octets().into_iter().enumerate() {
        push_decimal((index > 0).then_some(b'.'), octet.into());
    }
    push_decimal(Some(separator), number);
    (text, length)
}

impl fmt::Debug for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cidr({self})")
    }
}

/// A peer's UDP endpoint: `203.0.113.7:51820` or `[2001:db8::7]:51820`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint(SocketAddr);

/// Why a string is not an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("endpoint {input:?} has no port; expected ip:port or [ipv6]:port")]
    MissingPort { input: String },
    #[error("endpoint {input:?}: an IPv6 address must be in brackets, as [ipv6]:port")]
    UnbracketedIpv6 { input: String },
    #[error("endpoint {input:?}: port must be a number from 1 to 65535")]
    BadPort { input: String },
    #[error("endpoint {input:?} does not hold an IP address (host names are not resolved)")]
    BadAddress { input: String },
    #[error("endpoint {input:?}: an IPv6 scope must be an interface index, as [fe80::1%3]:port")]
    BadScope { input: String },
}

impl Endpoint {
    pub const fn socket_addr(&self) -> SocketAddr {
        self.0
    }

    pub const fn ip(&self) -> IpAddr {
        self.0.ip()
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(address: SocketAddr) -> Self {
        Self(address)
    }
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let owned = || input.to_owned();
        let bad_port = || EndpointError::BadPort { input: owned() };
        let address = if let Some(rest) = input.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| EndpointError::BadAddress { input: owned() })?;
            let port = after.strip_prefix(':').ok_or_else(|| EndpointError::MissingPort { input: owned() })?;
            // a link-local address carries its scope (interface index), as `Display` writes it
            let (host, scope_id) = match host.split_once('%') {
                Some((host, scope)) => {
                    (host, scope.parse::<u32>().map_err(|_| EndpointError::BadScope { input: owned() })?)
                }
                None => (host, 0),
            };
            let address: Ipv6Addr = host.parse().map_err(|_| EndpointError::BadAddress { input: owned() })?;
            SocketAddr::V6(SocketAddrV6::new(address, parse_port(port).ok_or_else(bad_port)?, 0, scope_id))
        } else {
            let (host, port) = input.rsplit_once(':').ok_or_else(|| EndpointError::MissingPort { input: owned() })?;
            if host.contains(':') {
                return Err(EndpointError::UnbracketedIpv6 { input: owned() });
            }
            let address: Ipv4Addr = host.parse().map_err(|_| EndpointError::BadAddress { input: owned() })?;
            SocketAddr::new(IpAddr::V4(address), parse_port(port).ok_or_else(bad_port)?)
        };
        Ok(Self(address))
    }
}

fn parse_port(text: &str) -> Option<u16> {
    text.parse::<u16>().ok().filter(|port| *port != 0)
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            SocketAddr::V4(address) => write_v4_and_number(f, *address.ip(), b':', address.port()),
            SocketAddr::V6(address) => write!(f, "{address}"),
        }
    }
}

impl AppendText for Endpoint {
    fn append_text(&self, out: &mut Vec<u8>) {
        match self.0 {
            SocketAddr::V4(address) => append_v4_and_number(out, *address.ip(), b':', address.port()),
            SocketAddr::V6(_) => append_display(out, self),
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({})", self.0)
    }
}

impl Packable for Cidr {
    const EXPECTING: &'static str = "a packed prefix";

    /// 4 or 16 address bytes, then the prefix length.
    fn pack(&self) -> Packed {
        let packed = match self.address {
            IpAddr::V4(v4) => Packed::new().push(&v4.octets()),
            IpAddr::V6(v6) => Packed::new().push(&v6.octets()),
        };
        packed.push(&[self.prefix_len])
    }

    fn unpack(bytes: &[u8]) -> Result<Self, String> {
        let address = match bytes.len() {
            5 => IpAddr::from([bytes[0], bytes[1], bytes[2], bytes[3]]),
            17 => IpAddr::V6(ipv6_from(bytes)),
            length => return Err(format!("a packed prefix is 5 or 17 bytes, not {length}")),
        };
        Self::new(address, bytes[bytes.len() - 1]).map_err(|error| error.to_string())
    }
}

impl Packable for Endpoint {
    const EXPECTING: &'static str = "a packed endpoint";

    /// 4 address bytes and the port, or 16 address bytes, the port and the scope id.
    fn pack(&self) -> Packed {
        match self.0 {
            SocketAddr::V4(v4) => Packed::new().push(&v4.ip().octets()).push(&v4.port().to_be_bytes()),
            SocketAddr::V6(v6) => {
                Packed::new().push(&v6.ip().octets()).push(&v6.port().to_be_bytes()).push(&v6.scope_id().to_be_bytes())
            }
        }
    }

    fn unpack(bytes: &[u8]) -> Result<Self, String> {
        let port = |at: usize| u16::from_be_bytes([bytes[at], bytes[at + 1]]);
        let address = match bytes.len() {
            6 => SocketAddr::new(IpAddr::from([bytes[0], bytes[1], bytes[2], bytes[3]]), port(4)),
            22 => {
                let scope_id = u32::from_be_bytes([bytes[18], bytes[19], bytes[20], bytes[21]]);
                SocketAddr::V6(SocketAddrV6::new(ipv6_from(bytes), port(16), 0, scope_id))
            }
            length => return Err(format!("a packed endpoint is 6 or 22 bytes, not {length}")),
        };
        if address.port() == 0 {
            return Err(format!("packed endpoint {address} has port 0"));
        }
        Ok(Self(address))
    }
}

/// The IPv6 address in a packed value's first 16 bytes (the caller checked the length).
fn ipv6_from(bytes: &[u8]) -> Ipv6Addr {
    let mut octets = [0; 16];
    octets.copy_from_slice(&bytes[..16]);
    Ipv6Addr::from(octets)
}

/// Both types travel as their text form (events in Avro and JSON alike); rows and snapshots carry
/// them packed, through [`crate::packed`].
macro_rules! serde_as_text {
    ($type:ty) => {
        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_as_text!(Cidr);
serde_as_text!(Endpoint);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn v4_text_is_what_the_standard_types_write(bits: u32, prefix_len in 0u8..=32, port in 1u16..) {
            let address = Ipv4Addr::from(bits);
            let cidr = Cidr::new(mask(IpAddr::V4(address), prefix_len), prefix_len).expect("masked");
            prop_assert_eq!(cidr.to_string(), format!("{}/{prefix_len}", mask(IpAddr::V4(address), prefix_len)));
            let endpoint = Endpoint(SocketAddr::new(IpAddr::V4(address), port));
            prop_assert_eq!(endpoint.to_string(), format!("{address}:{port}"));
            prop_assert_eq!(appended(&cidr), cidr.to_string());
            prop_assert_eq!(appended(&endpoint), endpoint.to_string());
        }

        #[test]
        fn v6_text_appended_is_the_display_text(bits: u128, prefix_len in 0u8..=128, port in 1u16.., scope: u32) {
            let address = Ipv6Addr::from(bits);
            let cidr = Cidr::containing(IpAddr::V6(address), prefix_len);
            prop_assert_eq!(appended(&cidr), cidr.to_string());
            let endpoint = Endpoint(SocketAddr::V6(SocketAddrV6::new(address, port, 0, scope)));
            prop_assert_eq!(appended(&endpoint), endpoint.to_string());
        }
    }

    /// The text `append_text` writes after some bytes already there.
    fn appended(value: &impl AppendText) -> String {
        let mut out = b"before ".to_vec();
        value.append_text(&mut out);
        String::from_utf8(out).expect("utf-8").strip_prefix("before ").expect("kept").to_owned()
    }

    #[test]
    fn cidrs_parse_v4_v6_and_bare_hosts() {
        assert_eq!("10.8.0.0/24".parse::<Cidr>().expect("v4").to_string(), "10.8.0.0/24");
        assert_eq!("fd00:1::/64".parse::<Cidr>().expect("v6").to_string(), "fd00:1::/64");
        assert_eq!("10.8.0.7".parse::<Cidr>().expect("host").to_string(), "10.8.0.7/32");
        assert_eq!("0.0.0.0/0".parse::<Cidr>().expect("default").prefix_len(), 0);
        assert_eq!("::/0".parse::<Cidr>().expect("default6").prefix_len(), 0);
    }

    #[test]
    fn cidr_errors_are_precise() {
        assert_eq!(
            "10.8.0.1/24".parse::<Cidr>(),
            Err(CidrError::HostBitsSet { input: "10.8.0.1/24".into(), network: "10.8.0.0/24".into() })
        );
        assert_eq!(
            "10.8.0.0/33".parse::<Cidr>(),
            Err(CidrError::BadPrefixLength { input: "10.8.0.0/33".into(), max: 32 })
        );
        assert_eq!(
            "10.8.0.0/+8".parse::<Cidr>(),
            Err(CidrError::BadPrefixLength { input: "10.8.0.0/+8".into(), max: 32 })
        );
        assert_eq!("10.8.0/24".parse::<Cidr>(), Err(CidrError::BadAddress { input: "10.8.0/24".into() }));
        assert!(matches!("fd00::/129".parse::<Cidr>(), Err(CidrError::BadPrefixLength { max: 128, .. })));
    }

    #[test]
    fn containment() {
        let net: Cidr = "192.0.2.0/24".parse().expect("net");
        assert!(net.contains("192.0.2.99".parse().expect("ip")));
        assert!(!net.contains("192.0.3.1".parse().expect("ip")));
        assert!(!net.contains("::ffff:192.0.2.1".parse().expect("ip")));
        assert_eq!(Cidr::containing("2001:db8:1:2::9".parse().expect("ip"), 48).to_string(), "2001:db8:1::/48");
    }

    #[test]
    fn endpoints_parse_and_errors_are_precise() {
        assert_eq!("203.0.113.7:51820".parse::<Endpoint>().expect("v4").to_string(), "203.0.113.7:51820");
        assert_eq!("[2001:db8::7]:51820".parse::<Endpoint>().expect("v6").to_string(), "[2001:db8::7]:51820");
        assert_eq!(
            "2001:db8::7:51820".parse::<Endpoint>(),
            Err(EndpointError::UnbracketedIpv6 { input: "2001:db8::7:51820".into() })
        );
        assert_eq!("203.0.113.7".parse::<Endpoint>(), Err(EndpointError::MissingPort { input: "203.0.113.7".into() }));
        assert_eq!("203.0.113.7:0".parse::<Endpoint>(), Err(EndpointError::BadPort { input: "203.0.113.7:0".into() }));
        assert_eq!(
            "gw.example:51820".parse::<Endpoint>(),
            Err(EndpointError::BadAddress { input: "gw.example:51820".into() })
        );
        assert_eq!("[::1]51820".parse::<Endpoint>(), Err(EndpointError::MissingPort { input: "[::1]51820".into() }));
        assert_eq!(
            "[fe80::1%eth0]:51820".parse::<Endpoint>(),
            Err(EndpointError::BadScope { input: "[fe80::1%eth0]:51820".into() })
        );
    }

    /// A link-local endpoint read from the kernel carries its interface index; its text form (in
    /// events and stored rows) must read back, or the observation would become a dead letter.
    #[test]
    fn a_scoped_ipv6_endpoint_reads_back_from_its_text() {
        let scoped = Endpoint::from(SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().expect("v6"), 51820, 0, 3)));
        assert_eq!(scoped.to_string(), "[fe80::1%3]:51820");
        assert_eq!(scoped.to_string().parse::<Endpoint>(), Ok(scoped));
        let json = serde_json::to_string(&scoped).expect("serialise");
        assert_eq!(serde_json::from_str::<Endpoint>(&json).expect("deserialise"), scoped);
    }

    #[test]
    fn binary_formats_carry_packed_bytes_that_read_back() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Row {
            #[serde(with = "crate::packed::list")]
            endpoints: Vec<Endpoint>,
            #[serde(with = "crate::packed::option")]
            scoped: Option<Endpoint>,
            #[serde(with = "crate::packed::list")]
            cidrs: std::sync::Arc<[Cidr]>,
        }
        let scoped = Endpoint::from(SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().expect("v6"), 51820, 0, 3)));
        let row = Row {
            endpoints: vec!["203.0.113.7:51820".parse().expect("v4"), "[2001:db8::7]:443".parse().expect("v6")],
            scoped: Some(scoped),
            cidrs: ["10.8.0.0/24", "fd00:1::/64", "0.0.0.0/0"].map(|text| text.parse().expect("cidr")).into(),
        };
        let bytes = postcard::to_allocvec(&row).expect("serialise");
        // counts, option tag, lengths, then 6 + 22 + 22 endpoint bytes and 5 + 17 + 5 prefix bytes: no text
        assert_eq!(bytes.len(), 3 + 6 + 50 + 27);
        assert_eq!(postcard::from_bytes::<Row>(&bytes).expect("deserialise"), row);
        // human-readable formats keep the text
        let json = serde_json::to_value(&row).expect("json");
        assert_eq!(json["scoped"], "[fe80::1%3]:51820");
        assert_eq!(json["cidrs"][1], "fd00:1::/64");
        assert_eq!(serde_json::from_value::<Row>(json).expect("from json"), row);
        let packed = |bytes: &[u8]| postcard::to_allocvec(&(0_u8, 1_u8, bytes, 0_u8)).expect("serialise");
        for (bytes, what) in [(&[1_u8, 2, 3][..], "too short"), (&[192, 0, 2, 1, 0, 0], "port 0")] {
            assert!(postcard::from_bytes::<Row>(&packed(bytes)).is_err(), "{what}");
        }
        let cidr_row = postcard::to_allocvec(&(0_u8, 0_u8, 1_u8, [10_u8, 8, 0, 1, 24].as_slice())).expect("serialise");
        assert!(postcard::from_bytes::<Row>(&cidr_row).is_err(), "host bits set");
    }
}
