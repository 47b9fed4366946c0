//! Validated names: organisation, host and collector ids, Linux interface names, clearance levels.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a valid identifier or interface name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} is {length} bytes long, the limit is {max}")]
    TooLong { what: &'static str, length: usize, max: usize },
    #[error("{what} contains {found:?} at byte {position}; allowed: {allowed}")]
    InvalidCharacter { what: &'static str, found: char, position: usize, allowed: &'static str },
    #[error("{what} cannot be {name:?}")]
    Reserved { what: &'static str, name: &'static str },
}

fn check_identifier(text: &str, what: &'static str, max: usize) -> Result<(), NameError> {
    check_characters(text, what, max, ID_CHARACTERS, is_id_character)
}

fn check_characters(
    text: &str, what: &'static str, max: usize, allowed: &'static str, is_allowed: fn(char) -> bool,
) -> Result<(), NameError> {
    if text.is_empty() {
        return Err(NameError::Empty { what });
    }
    if text.len() > max {
        return Err(NameError::TooLong { what, length: text.len(), max });
    }
    match text.char_indices().find(|&(_, found)| !is_allowed(found)) {
        Some((position, found)) => Err(NameError::InvalidCharacter { what, found, position, allowed }),
        None => Ok(()),
    }
}

/// Declares a cheaply clonable, validated string identifier.
macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, max = $max:literal, validate = $validate:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Longest accepted value in bytes.
            pub const MAX_LEN: usize = $max;

            pub fn as_str(&self) -> &str {
                &self.0
            }

            fn validate(text: &str) -> Result<(), NameError> {
                let validate: fn(&str) -> Result<(), NameError> = $validate;
                validate(text)
            }
        }

        impl FromStr for $name {
            type Err = NameError;

            fn from_str(text: &str) -> Result<Self, NameError> {
                Self::validate(text)?;
                Ok(Self(Arc::from(text)))
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;

            fn try_from(text: String) -> Result<Self, NameError> {
                Self::validate(&text)?;
                Ok(Self(Arc::from(text)))
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        /// Decodes without copying the text first; the text is checked as [`FromStr`] checks it.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(Text(|text: &str| Self::from_str(text)))
            }
        }
    };
}

/// A serde visitor of a string, borrowed or not, handed to a parse.
struct Text<F>(F);

impl<T, F: FnOnce(&str) -> Result<T, NameError>> serde::de::Visitor<'_> for Text<F> {
    type Value = T;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an identifier")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<T, E> {
        (self.0)(text).map_err(E::custom)
    }
}

const ID_CHARACTERS: &str = "ASCII letters, digits, '.', '_', '-', ':'";

fn is_id_character(found: char) -> bool {
    found.is_ascii_alphanumeric() || matches!(found, '.' | '_' | '-' | ':')
}

identifier!(
    /// Tenant that owns gateways and peers; scopes every read and write.
    OrgId,
    max = 64,
    validate = |text| check_identifier(text, "organisation id", OrgId::MAX_LEN)
);
identifier!(
    /// A gateway host, as its collector names it (a DNS-style name).
    HostId,
    max = 253,
    validate = |text| check_identifier(text, "host id", HostId::MAX_LEN)
);
identifier!(
    /// One collector instance; its `seq` numbers rise monotonically.
    CollectorId,
    max = 128,
    validate = |text| check_identifier(text, "collector id", CollectorId::MAX_LEN)
);
identifier!(
    /// A Linux network interface name: 1 to 15 bytes, no '/', ':', whitespace or NUL, not "." or "..".
    InterfaceName,
    max = 15,
    validate = check_interface_name
);

/// The rules of the kernel's `dev_valid_name`, with the reason on failure.
fn check_interface_name(text: &str) -> Result<(), NameError> {
    const WHAT: &str = "interface name";
    for reserved in [".", ".."] {
        if text == reserved {
            return Err(NameError::Reserved { what: WHAT, name: reserved });
        }
    }
    check_characters(
        text,
        WHAT,
        InterfaceName::MAX_LEN,
        "any printable character except '/', ':' and whitespace",
        |found| !(found == '/' || found == ':' || found.is_whitespace() || found.is_control()),
    )
}

/// Kafka message key: every event of one gateway lands on one partition, in order.
pub fn partition_key(org: &OrgId, host: &HostId) -> String {
    format!("{org}/{host}")
}

/// Ordered classification levels; a token sees peers at or below its own level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Clearance {
    #[default]
    Unclassified,
    Restricted,
    Confidential,
    Secret,
    TopSecret,
}

impl Clearance {
    /// Every level, lowest first, in the order of the Avro enum symbols.
    pub const ALL: [Clearance; 5] = [
        Clearance::Unclassified,
        Clearance::Restricted,
        Clearance::Confidential,
        Clearance::Secret,
        Clearance::TopSecret,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Clearance::Unclassified => "UNCLASSIFIED",
            Clearance::Restricted => "RESTRICTED",
            Clearance::Confidential => "CONFIDENTIAL",
            Clearance::Secret => "SECRET",
            Clearance::TopSecret => "TOP_SECRET",
        }
    }
}

/// A clearance name that is not one of the five levels.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown clearance level {found:?}; expected one of UNCLASSIFIED, RESTRICTED, CONFIDENTIAL, SECRET, TOP_SECRET"
)]
pub struct ClearanceError {
    pub found: String,
}

impl FromStr for Clearance {
    type Err = ClearanceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Clearance::ALL
            .into_iter()
            .find(|level| level.name().eq_ignore_ascii_case(text))
            .ok_or_else(|| ClearanceError { found: text.to_owned() })
    }
}

impl fmt::Display for Clearance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_identifiers_are_checked() {
        let decode = |text: &str| postcard::from_bytes::<HostId>(&postcard::to_allocvec(text).expect("encode"));
        let first = decode("gw-1").expect("valid");
        assert_eq!(first.as_str(), "gw-1");
        let other = decode("gw-2").expect("valid");
        assert_eq!(other.as_str(), "gw-2");
        assert!(decode("gw 1").is_err(), "a space is refused");
        assert_eq!(serde_json::from_str::<HostId>("\"gw-1\"").expect("json"), first);
        assert!(serde_json::from_str::<HostId>("17").is_err());
    }

    #[test]
    fn interface_names_follow_the_kernel_rules() {
        assert!(InterfaceName::from_str("wg0").is_ok());
        assert!(InterfaceName::from_str("wg-hub.site_07").is_ok());
        assert!(InterfaceName::from_str("a23456789012345").is_ok());
        assert_eq!(
            InterfaceName::from_str("a234567890123456"),
            Err(NameError::TooLong { what: "interface name", length: 16, max: 15 })
        );
        assert_eq!(InterfaceName::from_str(""), Err(NameError::Empty { what: "interface name" }));
        assert!(matches!(
            InterfaceName::from_str("wg/0"),
            Err(NameError::InvalidCharacter { found: '/', position: 2, .. })
        ));
        assert!(matches!(InterfaceName::from_str("wg 0"), Err(NameError::InvalidCharacter { found: ' ', .. })));
        assert!(matches!(InterfaceName::from_str("wg:0"), Err(NameError::InvalidCharacter { .. })));
        assert_eq!(InterfaceName::from_str(".."), Err(NameError::Reserved { what: "interface name", name: ".." }));
    }

    #[test]
    fn identifiers_reject_separators_and_say_which_character() {
        assert!("acme-corp".parse::<OrgId>().is_ok());
        let error = "acme/corp".parse::<OrgId>().expect_err("slash");
        assert_eq!(
            error.to_string(),
            "organisation id contains '/' at byte 4; allowed: ASCII letters, digits, '.', '_', '-', ':'"
        );
        assert!("gw-01.fob.example".parse::<HostId>().is_ok());
        assert!(matches!("x".repeat(254).parse::<HostId>(), Err(NameError::TooLong { max: 253, .. })));
    }

    #[test]
    fn clearance_levels_are_ordered_and_named() {
        assert!(Clearance::Unclassified < Clearance::Restricted);
        assert!(Clearance::Secret < Clearance::TopSecret);
        assert_eq!("top_secret".parse::<Clearance>(), Ok(Clearance::TopSecret));
        assert_eq!(Clearance::Confidential.to_string(), "CONFIDENTIAL");
        assert!("COSMIC".parse::<Clearance>().is_err());
    }
}
