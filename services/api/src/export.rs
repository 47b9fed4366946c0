//! `wg`-format configuration export for backup and audit: never a private or preshared key.

use std::fmt::Write as _;

use argus_core::{HostId, HostRecord, InterfaceName, PeerRecord};

/// The `[Interface]` section (listen port; the public key as a comment, as `wg` has no field for
/// it) and one `[Peer]` per record, in the order given.
pub fn wg_config(
    host: &HostId, interface: &InterfaceName, gateway: Option<&HostRecord>, peers: &[PeerRecord],
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {host} {interface}: exported by Argus WireGuard for backup and audit");
    let _ = writeln!(out, "# PrivateKey is not included: Argus never reads private or preshared keys");
    out.push_str("[Interface]\n");
    if let Some(key) = gateway.and_then(|gateway| gateway.interface_public_key) {
        let _ = writeln!(out, "# PublicKey = {key}");
    }
    if let Some(port) = gateway.and_then(|gateway| gateway.listen_port) {
        let _ = writeln!(out, "ListenPort = {port}");
    }
    for peer in peers {
        out.push_str("\n[Peer]\n");
        // the comment lines a collector's inventory reads back (`# Name = ...`)
        for (field, value) in [("Name", &peer.metadata.display_name), ("Owner", &peer.metadata.owner)] {
            if let Some(value) = value {
                // a name is free text: a line break or other control character would end the comment
                let value: String = value.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
                let _ = writeln!(out, "# {field} = {value}");
            }
        }
        let _ = writeln!(out, "PublicKey = {}", peer.public_key);
        if !peer.allowed_ips.is_empty() {
            let cidrs: Vec<String> = peer.allowed_ips.iter().map(ToString::to_string).collect();
            let _ = writeln!(out, "AllowedIPs = {}", cidrs.join(", "));
        }
        if let Some(endpoint) = peer.endpoint {
            let _ = writeln!(out, "Endpoint = {endpoint}");
        }
        if let Some(seconds) = peer.persistent_keepalive.filter(|seconds| *seconds > 0) {
            let _ = writeln!(out, "PersistentKeepalive = {seconds}");
        }
    }
    out
}
