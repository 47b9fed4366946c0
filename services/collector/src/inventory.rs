//! The peer inventory: names, owners, sites and clearances of peers by public key, read from a file
//! the operator keeps (pure: text in, entries or the failing line out).
//!
//! Two forms are read. A wg-quick configuration, whose `[Peer]` sections may carry comment lines
//! `# Name = FOB 7`, `# Owner = ...`, `# Site = ...`, `# Clearance = SECRET` (the form Argus's own
//! export writes); its private and preshared keys are skipped unread. Or TOML, one `[[peer]]`
//! table per peer with `public_key`, `name`, `owner`, `site`, `clearance`.

use std::collections::HashMap;

use argus_core::{Clearance, PublicKey};
use serde::Deserialize;

/// What the inventory knows of one peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InventoryEntry {
    pub name: Option<String>,
    pub owner: Option<String>,
    pub site: Option<String>,
    pub clearance: Option<Clearance>,
}

impl InventoryEntry {
    /// The site as the tag a peer carries (`site:fob-07`).
    pub fn site_tag(&self) -> Option<String> {
        self.site.as_ref().map(|site| format!("site:{site}"))
    }
}

/// Peers by public key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    peers: HashMap<PublicKey, InventoryEntry>,
}

/// Why an inventory file was refused: the line (1-based) and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct InventoryError {
    pub line: usize,
    pub reason: String,
}

fn refused(line: usize, reason: impl Into<String>) -> InventoryError {
    InventoryError { line, reason: reason.into() }
}

/// Longest name, owner or site kept (the API's bound on free text).
const MAX_TEXT: usize = 256;

fn checked_text(line: usize, field: &str, value: &str) -> Result<String, InventoryError> {
    let value = value.trim();
    if value.is_empty() || value.len() > MAX_TEXT || value.chars().any(char::is_control) {
        return Err(refused(line, format!("{field} must be 1 to {MAX_TEXT} bytes of text without control characters")));
    }
    Ok(value.to_owned())
}

impl Inventory {
    pub fn get(&self, key: &PublicKey) -> Option<&InventoryEntry> {
        self.peers.get(key)
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Reads either form: a text with a `[Peer]` section is a wg-quick configuration, else TOML.
    pub fn parse(text: &str) -> Result<Self, InventoryError> {
        let wg_quick = text.lines().any(|line| line.trim().eq_ignore_ascii_case("[peer]"));
        if wg_quick { Self::parse_wg_quick(text) } else { Self::parse_toml(text) }
    }

    fn insert(&mut self, line: usize, key: PublicKey, entry: InventoryEntry) -> Result<(), InventoryError> {
        if self.peers.insert(key, entry).is_some() {
            return Err(refused(line, format!("public key {key} is listed twice")));
        }
        Ok(())
    }

    fn parse_wg_quick(text: &str) -> Result<Self, InventoryError> {
        let mut inventory = Self::default();
        // the [Peer] section being read: where it started, its key, what its comments said
        let mut section: Option<(usize, Option<PublicKey>, InventoryEntry)> = None;
        let finish = |inventory: &mut Self, section: Option<(usize, Option<PublicKey>, InventoryEntry)>| match section {
            Some((line, Some(key), entry)) => inventory.insert(line, key, entry),
            Some((line, None, _)) => Err(refused(line, "[Peer] section without a PublicKey")),
            None => Ok(()),
        };
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.starts_with('[') {
                finish(&mut inventory, section.take())?;
                if trimmed.eq_ignore_ascii_case("[peer]") {
                    section = Some((line, None, InventoryEntry::default()));
                }
                continue;
            }
            let Some((_, key, entry)) = section.as_mut() else { continue };
            if let Some(comment) = trimmed.strip_prefix('#') {
                let Some((field, value)) = comment.split_once('=') else { continue };
                match field.trim().to_ascii_lowercase().as_str() {
                    "name" => entry.name = Some(checked_text(line, "Name", value)?),
                    "owner" => entry.owner = Some(checked_text(line, "Owner", value)?),
                    "site" => entry.site = Some(checked_text(line, "Site", value)?),
                    "clearance" => {
                        let clearance =
                            value.trim().parse().map_err(|error| refused(line, format!("Clearance: {error}")))?;
                        entry.clearance = Some(clearance);
                    }
                    _ => {}
                }
                continue;
            }
            // only the key is read: PresharedKey (and anything else) is skipped unread
            if let Some((field, value)) = trimmed.split_once('=')
                && field.trim().eq_ignore_ascii_case("publickey")
            {
                let parsed: PublicKey =
                    value.trim().parse().map_err(|error| refused(line, format!("PublicKey: {error}")))?;
                *key = Some(parsed);
            }
        }
        finish(&mut inventory, section.take())?;
        Ok(inventory)
    }

    fn parse_toml(text: &str) -> Result<Self, InventoryError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            #[serde(default)]
            peer: Vec<toml::Spanned<Peer>>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Peer {
            public_key: String,
            name: Option<String>,
            owner: Option<String>,
            site: Option<String>,
            clearance: Option<Clearance>,
        }
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let file: File = toml::from_str(text).map_err(|error| {
            let line = error.span().map_or(1, |span| line_of(span.start));
            refused(line, error.message().to_owned())
        })?;
        let mut inventory = Self::default();
        for peer in file.peer {
            let line = line_of(peer.span().start);
            let Peer { public_key, name, owner, site, clearance } = peer.into_inner();
            let key: PublicKey = public_key.parse().map_err(|error| refused(line, format!("public_key: {error}")))?;
            let text = |field, value: Option<String>| value.map(|value| checked_text(line, field, &value)).transpose();
            let entry = InventoryEntry {
                name: text("name", name)?,
                owner: text("owner", owner)?,
                site: text("site", site)?,
                clearance,
            };
            inventory.insert(line, key, entry)?;
        }
        Ok(inventory)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> PublicKey {
        PublicKey::from_bytes([byte; 32])
    }

    #[test]
    fn a_wg_quick_configuration_names_its_peers_and_its_keys_are_skipped() {
        let text = format!(
            "[Interface]\nPrivateKey = {private}\nListenPort = 51820\n\n[Peer]\n# Name = FOB 7 uplink\n\
             # Owner = noc@acme\n#site=fob-07\n# Clearance = SECRET\nPublicKey = {one}\n\
             PresharedKey = {private}\nAllowedIPs = 10.0.0.7/32\n\n[Peer]\nPublicKey = {two}\n",
            private = key(9),
            one = key(1),
            two = key(2)
        );
        let inventory = Inventory::parse(&text).expect("parses");
        assert_eq!(inventory.len(), 2);
        let named = inventory.get(&key(1)).expect("peer 1");
        assert_eq!(named.name.as_deref(), Some("FOB 7 uplink"));
        assert_eq!(named.owner.as_deref(), Some("noc@acme"));
        assert_eq!(named.site_tag().as_deref(), Some("site:fob-07"));
        assert_eq!(named.clearance, Some(Clearance::Secret));
        assert_eq!(inventory.get(&key(2)), Some(&InventoryEntry::default()));
        assert!(inventory.get(&key(9)).is_none(), "the private key is no peer");
        assert!(!format!("{inventory:?}").contains(&key(9).to_string()), "and it is not kept");
    }

    #[test]
    fn a_toml_inventory_lists_peers() {
        let text = format!(
            "[[peer]]\npublic_key = \"{}\"\nname = \"FOB 7\"\nsite = \"fob-07\"\nclearance = \"RESTRICTED\"\n\n\
             [[peer]]\npublic_key = \"{}\"\nowner = \"ops\"\n",
            key(1),
            key(2)
        );
        let inventory = Inventory::parse(&text).expect("parses");
        assert_eq!(inventory.get(&key(1)).and_then(|entry| entry.name.as_deref()), Some("FOB 7"));
        assert_eq!(inventory.get(&key(1)).and_then(|entry| entry.clearance), Some(Clearance::Restricted));
        assert_eq!(inventory.get(&key(2)).and_then(|entry| entry.owner.as_deref()), Some("ops"));
        let padded = format!("[[peer]]\npublic_key = \"{}\"\nname = \"  FOB 9 \"\n", key(9));
        let padded = Inventory::parse(&padded).expect("parses");
        assert_eq!(padded.get(&key(9)).and_then(|entry| entry.name.as_deref()), Some("FOB 9"), "trimmed like wg-quick");
        assert!(Inventory::parse("").expect("an empty file lists no peer").is_empty());
    }

    #[test]
    fn a_malformed_inventory_is_refused_with_its_line_and_reason() {
        let cases = [
            ("[Peer]\n# Name = ok\nPublicKey = not-a-key\n".to_owned(), 3, "PublicKey"),
            (
                format!("[Interface]\nListenPort = 1\n\n[Peer]\n# Name = a\n[Peer]\nPublicKey = {}\n", key(1)),
                4,
                "without a PublicKey",
            ),
            (format!("[Peer]\nPublicKey = {}\n[Peer]\nPublicKey = {}\n", key(1), key(1)), 3, "listed twice"),
            (format!("[Peer]\n# Clearance = COSMIC\nPublicKey = {}\n", key(1)), 2, "Clearance"),
            ("[Peer]\n# Name = \u{7}\n".to_owned(), 2, "control characters"),
            (format!("[[peer]]\npublic_key = \"{}\"\ncolour = \"blue\"\n", key(1)), 3, "colour"),
            ("[[peer]]\npublic_key = \"short\"\n".to_owned(), 1, "public_key"),
            ("[[peer]\n".to_owned(), 1, ""),
        ];
        for (text, line, reason) in cases {
            let error = Inventory::parse(&text).expect_err(&text);
            assert_eq!(error.line, line, "{text:?}: {error}");
            assert!(error.reason.contains(reason), "{text:?}: {error}");
        }
    }
}
