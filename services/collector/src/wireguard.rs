//! Reads this host's WireGuard interfaces with `defguard_wireguard_rs`: userspace ones (wireguard-go,
//! boringtun) through their UAPI socket, kernel ones through netlink. Private and preshared keys
//! are dropped here, as soon as they are read: nothing past this module can see them.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use argus_core::{Cidr, Endpoint, InterfaceName, PeerSource, PublicKey, UnixMillis};
use defguard_wireguard_rs::host::Host;
use defguard_wireguard_rs::{Kernel, Userspace, WGApi, WireguardInterfaceApi};

/// One peer as WireGuard reports it, without its preshared key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSnapshot {
    pub public_key: PublicKey,
    pub endpoint: Option<Endpoint>,
    pub allowed_ips: Vec<Cidr>,
    /// `None` when WireGuard reports 0 (never).
    pub latest_handshake: Option<UnixMillis>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub persistent_keepalive: Option<u16>,
}

/// One interface as one read saw it, without its private key; peers sorted by public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceSnapshot {
    pub name: InterfaceName,
    pub kind: PeerSource,
    /// Derived from the private key, which is then dropped.
    pub public_key: Option<PublicKey>,
    pub listen_port: Option<u16>,
    pub peers: Vec<PeerSnapshot>,
}

/// Why an interface could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(
        "interface {interface}: no WireGuard interface of that name (no UAPI socket in {uapi_dir}, no kernel device)"
    )]
    NotFound { interface: InterfaceName, uapi_dir: String },
    #[error("interface {interface}: {reason}")]
    Failed { interface: InterfaceName, reason: String },
}

/// Where to look for interfaces: the UAPI socket directory and the kernel's network devices.
#[derive(Debug, Clone)]
pub struct WireguardHost {
    uapi_dir: PathBuf,
    sys_class_net: PathBuf,
}

impl Default for WireguardHost {
    fn default() -> Self {
        Self { uapi_dir: PathBuf::from("/var/run/wireguard"), sys_class_net: PathBuf::from("/sys/class/net") }
    }
}

impl WireguardHost {
    /// Every WireGuard interface found: userspace ones by their UAPI socket, kernel ones by their
    /// device type. Sorted, without duplicates.
    pub fn discover(&self) -> Vec<InterfaceName> {
        let mut names: Vec<InterfaceName> = Vec::new();
        for entry in read_dir_names(&self.uapi_dir) {
            if let Some(name) = entry.strip_suffix(".sock").and_then(|name| name.parse().ok()) {
                names.push(name);
            }
        }
        for entry in read_dir_names(&self.sys_class_net) {
            if self.is_kernel_wireguard(&entry)
                && let Ok(name) = entry.parse()
            {
                names.push(name);
            }
        }
        names.sort();
        names.dedup();
        names
    }

    fn socket_path(&self, interface: &InterfaceName) -> PathBuf {
        self.uapi_dir.join(format!("{interface}.sock"))
    }

    fn is_kernel_wireguard(&self, device: &str) -> bool {
        std::fs::read_to_string(self.sys_class_net.join(device).join("uevent"))
            .is_ok_and(|uevent| uevent.lines().any(|line| line == "DEVTYPE=wireguard"))
    }

    /// Reads one interface (blocking: a socket or netlink round trip).
    pub fn read(&self, interface: &InterfaceName) -> Result<InterfaceSnapshot, ReadError> {
        let failed = |reason: String| ReadError::Failed { interface: interface.clone(), reason };
        let (kind, host) = if self.socket_path(interface).exists() {
            // defguard connects to /var/run/wireguard/<name>.sock, the path every UAPI
            // implementation uses
            let api = WGApi::<Userspace>::new(interface.as_str()).map_err(|error| failed(error.to_string()))?;
            (PeerSource::Userspace, api.read_interface_data().map_err(|error| failed(error.to_string()))?)
        } else if self.is_kernel_wireguard(interface.as_str()) {
            let api = WGApi::<Kernel>::new(interface.as_str()).map_err(|error| failed(error.to_string()))?;
            (PeerSource::Kernel, api.read_interface_data().map_err(|error| failed(error.to_string()))?)
        } else {
            return Err(ReadError::NotFound {
                interface: interface.clone(),
                uapi_dir: self.uapi_dir.display().to_string(),
            });
        };
        Ok(snapshot(interface.clone(), kind, host))
    }
}

fn read_dir_names(directory: &Path) -> Vec<String> {
    std::fs::read_dir(directory)
        .map(|entries| entries.filter_map(|entry| entry.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default()
}

/// Converts what defguard read, dropping the private and preshared keys first.
fn snapshot(name: InterfaceName, kind: PeerSource, mut host: Host) -> InterfaceSnapshot {
    let public_key = host.private_key.take().map(|private| PublicKey::from_bytes(private.public_key().as_array()));
    let mut peers: Vec<PeerSnapshot> = host
        .peers
        .into_values()
        .map(|mut peer| {
            peer.preshared_key = None;
            PeerSnapshot {
                public_key: PublicKey::from_bytes(peer.public_key.as_array()),
                endpoint: peer.endpoint.map(Endpoint::from),
                allowed_ips: peer.allowed_ips.iter().map(|prefix| cidr(prefix.address, prefix.cidr)).collect(),
                latest_handshake: peer.last_handshake.and_then(unix_millis),
                rx_bytes: peer.rx_bytes,
                tx_bytes: peer.tx_bytes,
                persistent_keepalive: peer.persistent_keepalive_interval.filter(|&seconds| seconds > 0),
            }
        })
        .collect();
    peers.sort_unstable_by_key(|peer| peer.public_key);
    InterfaceSnapshot { name, kind, public_key, listen_port: Some(host.listen_port).filter(|&port| port > 0), peers }
}

/// WireGuard keeps allowed IPs as networks; a host bit that slipped through is masked off.
fn cidr(address: IpAddr, prefix_len: u8) -> Cidr {
    Cidr::containing(address, prefix_len)
}

/// WireGuard's 0 means "never".
fn unix_millis(time: SystemTime) -> Option<UnixMillis> {
    let since = time.duration_since(UNIX_EPOCH).ok()?;
    (!since.is_zero()).then(|| i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use defguard_wireguard_rs::key::Key;
    use defguard_wireguard_rs::peer::Peer;

    use super::*;

    #[test]
    fn private_and_preshared_keys_do_not_survive_the_conversion() {
        let private = Key::new([7; 32]);
        let mut host = Host::new(51820, private.clone());
        let mut peer = Peer::new(Key::new([9; 32]));
        peer.preshared_key = Some(Key::new([5; 32]));
        peer.last_handshake = Some(UNIX_EPOCH + Duration::from_millis(1_780_272_000_123));
        peer.rx_bytes = 10;
        peer.tx_bytes = 20;
        peer.persistent_keepalive_interval = Some(25);
        peer.allowed_ips = vec!["10.8.0.0/24".parse().expect("prefix"), "fd00::/64".parse().expect("prefix")];
        host.peers.insert(peer.public_key.clone(), peer);
        let snapshot = snapshot("wg0".parse().expect("name"), PeerSource::Userspace, host);

        assert_eq!(snapshot.public_key, Some(PublicKey::from_bytes(private.public_key().as_array())));
        assert_eq!(snapshot.listen_port, Some(51820));
        let [peer] = snapshot.peers.as_slice() else { panic!("one peer") };
        assert_eq!(peer.public_key, PublicKey::from_bytes([9; 32]));
        assert_eq!(peer.latest_handshake, Some(1_780_272_000_123));
        assert_eq!(peer.allowed_ips.iter().map(ToString::to_string).collect::<Vec<_>>(), ["10.8.0.0/24", "fd00::/64"]);
        assert_eq!(peer.persistent_keepalive, Some(25));
        let printed = format!("{snapshot:?}");
        for secret in [[7u8; 32], [5u8; 32]] {
            assert!(!printed.contains(&PublicKey::from_bytes(secret).to_string()));
            assert!(!printed.contains(&PublicKey::from_bytes(secret).to_hex()));
        }
    }

    #[test]
    fn a_zero_handshake_means_never() {
        assert_eq!(unix_millis(UNIX_EPOCH), None);
        assert_eq!(unix_millis(UNIX_EPOCH + Duration::from_secs(1)), Some(1_000));
    }

    #[test]
    fn discovery_finds_sockets_and_kernel_devices_only() {
        let directory = tempfile::tempdir().expect("tempdir");
        let uapi = directory.path().join("uapi");
        let sys = directory.path().join("sys");
        std::fs::create_dir_all(&uapi).expect("dir");
        std::fs::write(uapi.join("wg-hub.sock"), b"").expect("socket stand-in");
        std::fs::write(uapi.join("notes.txt"), b"").expect("other file");
        for (device, uevent) in [("wg0", "DEVTYPE=wireguard\nINTERFACE=wg0\n"), ("eth0", "INTERFACE=eth0\n")] {
            std::fs::create_dir_all(sys.join(device)).expect("dir");
            std::fs::write(sys.join(device).join("uevent"), uevent).expect("uevent");
        }
        let host = WireguardHost { uapi_dir: uapi, sys_class_net: sys };
        let found: Vec<String> = host.discover().iter().map(ToString::to_string).collect();
        assert_eq!(found, ["wg-hub", "wg0"]);
        let missing: InterfaceName = "wg9".parse().expect("name");
        assert!(matches!(host.read(&missing), Err(ReadError::NotFound { .. })));
    }
}
