//! WireGuard public keys: 32 bytes, parsed from base64 (as `wg` prints) or hex (as the UAPI socket prints).

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::packed::PackedVisitor;
use crate::text::AppendText;

/// Length of a Curve25519 public key in bytes.
pub const KEY_LEN: usize = 32;

/// A peer's (or interface's) Curve25519 public key, the identity of a WireGuard peer.
///
/// There is deliberately no private-key type in this crate: nothing here can hold one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; KEY_LEN]);

/// Why a string or byte slice is not a WireGuard public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("public key is empty")]
    Empty,
    #[error("public key must be 44 characters of base64 or 64 lowercase hex digits, got {length} characters")]
    WrongTextLength { length: usize },
    #[error("public key is not valid base64: {reason}")]
    InvalidBase64 { reason: String },
    #[error("public key hex has an invalid character {found:?} at position {position} (lowercase 0-9a-f only)")]
    InvalidHex { found: char, position: usize },
    #[error("public key must be {KEY_LEN} bytes, got {length}")]
    WrongByteLength { length: usize },
}

impl PublicKey {
    /// Wraps raw key bytes.
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Builds a key from a slice that must be exactly 32 bytes long.
    pub fn try_from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        <[u8; KEY_LEN]>::try_from(bytes).map(Self).map_err(|_| KeyError::WrongByteLength { length: bytes.len() })
    }

    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The key as 64 lowercase hex digits, the form the UAPI socket uses.
    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = String::with_capacity(KEY_LEN * 2);
        for byte in self.0 {
            text.push(DIGITS[usize::from(byte >> 4)] as char);
            text.push(DIGITS[usize::from(byte & 0x0f)] as char);
        }
        text
    }

    fn parse_hex(text: &str) -> Result<Self, KeyError> {
        let mut bytes = [0u8; KEY_LEN];
        let digits = text.as_bytes();
        for (index, byte) in bytes.iter_mut().enumerate() {
            let high = hex_value(digits, index * 2)?;
            let low = hex_value(digits, index * 2 + 1)?;
            *byte = (high << 4) | low;
        }
        Ok(Self(bytes))
    }
}

fn hex_value(digits: &[u8], position: usize) -> Result<u8, KeyError> {
    match digits[position] {
        digit @ b'0'..=b'9' => Ok(digit - b'0'),
        digit @ b'a'..=b'f' => Ok(digit - b'a' + 10),
        other => Err(KeyError::InvalidHex { found: char::from(other), position }),
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.len() {
            0 => Err(KeyError::Empty),
            44 => {
                let bytes =
                    BASE64.decode(text).map_err(|error| KeyError::InvalidBase64 { reason: error.to_string() })?;
                Self::try_from_slice(&bytes)
            }
            64 => Self::parse_hex(text),
            length => Err(KeyError::WrongTextLength { length }),
        }
    }
}

impl PublicKey {
    /// The key's base64 text, encoded on the stack (pages of peers write hundreds).
    fn base64(&self) -> ([u8; 44], usize) {
        let mut text = [0; 44];
        // 32 bytes are always 44 characters of padded base64, which the buffer holds
        let written = BASE64.encode_slice(self.0, &mut text).unwrap_or(0);
        (text, written)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (text, written) = self.base64();
        f.write_str(std::str::from_utf8(&text[..written]).map_err(|_| fmt::Error)?)
    }
}

impl AppendText for PublicKey {
    fn append_text(&self, out: &mut Vec<u8>) {
        let (text, written) = self.base64();
        out.extend_from_slice(&text[..written]);
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

/// Human-readable formats (JSON) carry base64; binary formats (postcard: store rows, snapshots)
/// carry the 32 raw bytes.
impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() { serializer.collect_str(self) } else { serializer.serialize_bytes(&self.0) }
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            let unpack = |bytes: &[u8]| Self::try_from_slice(bytes).map_err(|error| error.to_string());
            deserializer.deserialize_bytes(PackedVisitor::new("32 key bytes", unpack))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WG_KEY: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";

    #[test]
    fn base64_and_hex_forms_parse_to_the_same_key() {
        let from_base64: PublicKey = WG_KEY.parse().expect("base64 key");
        let from_hex: PublicKey = from_base64.to_hex().parse().expect("hex key");
        assert_eq!(from_base64, from_hex);
        assert_eq!(from_base64.to_string(), WG_KEY);
        let mut appended = Vec::new();
        from_base64.append_text(&mut appended);
        assert_eq!(appended, WG_KEY.as_bytes());
        assert_eq!(from_base64.to_hex().len(), 64);
    }

    #[test]
    fn rejections_say_why() {
        assert_eq!("".parse::<PublicKey>(), Err(KeyError::Empty));
        assert_eq!("abc".parse::<PublicKey>(), Err(KeyError::WrongTextLength { length: 3 }));
        let upper_hex = "A".repeat(64);
        assert_eq!(upper_hex.parse::<PublicKey>(), Err(KeyError::InvalidHex { found: 'A', position: 0 }));
        let bad_base64 = format!("{}!", &WG_KEY[..43]);
        assert!(matches!(bad_base64.parse::<PublicKey>(), Err(KeyError::InvalidBase64 { .. })));
        // 44 characters of valid base64 that decode to 33 bytes are not a key
        let long = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB";
        assert!(matches!(
            long.parse::<PublicKey>(),
            Err(KeyError::WrongByteLength { .. }) | Err(KeyError::InvalidBase64 { .. })
        ));
        assert_eq!(PublicKey::try_from_slice(&[0; 31]), Err(KeyError::WrongByteLength { length: 31 }));
    }

    #[test]
    fn json_carries_base64() {
        let key: PublicKey = WG_KEY.parse().expect("key");
        let json = serde_json::to_string(&key).expect("json");
        assert_eq!(json, format!("\"{WG_KEY}\""));
        assert_eq!(serde_json::from_str::<PublicKey>(&json).expect("back"), key);
    }
}
