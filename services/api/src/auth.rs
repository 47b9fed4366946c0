//! Bearer tokens: JWT verification (HS256, RS256, ES256), the caller they name, and RFC 6750 refusals.

use std::fmt;
use std::str::FromStr;

pub use argus_core::Secret;
use argus_core::{Clearance, OrgId};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::cache::Memo;

/// What a caller may do; each role includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads.
    Viewer,
    /// Reads, syncs peers, sets rotation manifests, acknowledges alerts.
    Operator,
    /// Everything an operator may do (reserved for administration).
    Admin,
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?}; expected viewer, operator or admin")),
        }
    }
}

/// The claims an Argus token carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Who the caller is (user or service name), recorded on acknowledgements.
    pub sub: String,
    /// The only organisation the caller can read or write.
    pub org: String,
    /// The highest clearance the caller may see, e.g. `SECRET`.
    pub clearance: String,
    pub role: Role,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

/// The audience of collector credentials: what keeps them apart from API tokens, which lack it.
pub const COLLECTOR_AUDIENCE: &str = "argus-ingest";

/// The claims of a collector credential: it names a collector id and nothing more; what that
/// collector may speak for is the collector registry's to say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectorClaims {
    /// The collector id, as its events' `collector_id`.
    pub sub: String,
    /// [`COLLECTOR_AUDIENCE`].
    pub aud: String,
    pub exp: u64,
    /// Issue time: a registry entry may revoke credentials issued before a date.
    pub iat: u64,
}

/// An authenticated caller: every resolver is scoped by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub subject: String,
    pub org: OrgId,
    pub clearance: Clearance,
    pub role: Role,
    /// The last second (since the Unix epoch) the token is accepted: its `exp` and the leeway.
    pub accepted_until: u64,
}

/// A public key for RS256 or ES256 tokens, in PEM.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyConfig {
    /// `RS256` or `ES256`.
    pub algorithm: String,
    /// Matched against the token's `kid` when both are present.
    #[serde(default)]
    pub key_id: Option<String>,
    pub pem: String,
}

/// Which tokens the API accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Shared secret for HS256 tokens.
    #[serde(default)]
    pub hs256_secret: Option<Secret>,
    /// Public keys for RS256 / ES256 tokens.
    #[serde(default)]
    pub public_keys: Vec<PublicKeyConfig>,
    /// Required `iss`, when set.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    #[serde(default)]
    pub audience: Option<String>,
}

/// A configuration that cannot verify anything, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthConfigError {
    #[error("no token keys configured: set an hs256 secret or at least one public key")]
    NoKeys,
    #[error("hs256 secret must be at least 32 bytes, got {0}")]
    WeakSecret(usize),
    #[error("public key algorithm {0:?} is not supported; use RS256 or ES256")]
    UnsupportedAlgorithm(String),
    #[error("public key {index} is not a valid {algorithm} PEM key: {reason}")]
    BadKey { index: usize, algorithm: &'static str, reason: String },
}

/// Why a request was refused, as RFC 6750 names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header: 401 with a bare `Bearer` challenge.
    #[error("authorization required: send Authorization: Bearer <token>")]
    Missing,
    /// The header is not `Bearer <token>`: 400 `invalid_request`.
    #[error("{0}")]
    InvalidRequest(String),
    /// Expired, wrongly signed, unsigned or otherwise unacceptable token: 401 `invalid_token`.
    #[error("{0}")]
    InvalidToken(String),
    /// A valid token without the role the operation needs: 403 `insufficient_scope`.
    #[error("{0}")]
    InsufficientScope(String),
}

impl AuthError {
    /// The HTTP status RFC 6750 gives this refusal.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Missing | AuthError::InvalidToken(_) => 401,
            AuthError::InvalidRequest(_) => 400,
            AuthError::InsufficientScope(_) => 403,
        }
    }

    /// The `WWW-Authenticate` header value.
    pub fn challenge(&self) -> String {
        let realm = r#"Bearer realm="argus""#;
        let (code, description) = match self {
            AuthError::Missing => return realm.to_owned(),
            AuthError::InvalidRequest(text) => ("invalid_request", text),
            AuthError::InvalidToken(text) => ("invalid_token", text),
            AuthError::InsufficientScope(text) => ("insufficient_scope", text),
        };
        let description = description.replace(['"', '\\'], "'");
        format!(r#"{realm}, error="{code}", error_description="{description}""#)
    }

    /// The RFC 6750 error code, also given to GraphQL clients as `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "unauthenticated",
            AuthError::InvalidRequest(_) => "invalid_request",
            AuthError::InvalidToken(_) => "invalid_token",
            AuthError::InsufficientScope(_) => "insufficient_scope",
        }
    }
}

struct VerificationKey {
    key_id: Option<String>,
    key: DecodingKey,
    validation: Validation,
    /// The same checks for collector credentials: their audience, and an issue time.
    collector_validation: Validation,
}

/// Seconds a token is still accepted after its `exp` (clock skew between issuer and API).
const LEEWAY_SECONDS: u64 = 30;

/// Tokens whose verification is remembered, at most.
const VERIFIED_TOKENS: usize = 4_096;

/// Verifies bearer tokens against the configured keys.
pub struct Authenticator {
    keys: Vec<VerificationKey>,
    /// Tokens verified, by token text, and the caller each names: a dashboard sends the same token
    /// with every request, and its signature need not be checked again each time.
    verified: Memo<Box<str>, Caller>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator").field("keys", &self.keys.len()).finish()
    }
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Result<Self, AuthConfigError> {
        let validation_for = |algorithm: Algorithm| {
            let mut validation = Validation::new(algorithm);
            validation.leeway = LEEWAY_SECONDS;
            validation.validate_nbf = true;
            // a configured issuer or audience is required, not only checked when present
            let mut required = vec!["exp", "sub"];
            if let Some(issuer) = &config.issuer {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            match &config.audience {
                Some(audience) => {
                    validation.set_audience(&[audience]);
                    required.push("aud");
                }
                None => validation.validate_aud = false,
            }
            validation.set_required_spec_claims(&required);
            validation
        };
        let collector_validation_for = |algorithm: Algorithm| {
            let mut validation = validation_for(algorithm);
            validation.set_audience(&[COLLECTOR_AUDIENCE]);
            validation.validate_aud = true;
            let mut required = vec!["exp", "sub", "aud", "iat"];
            if config.issuer.is_some() {
                required.push("iss");
            }
            validation.set_required_spec_claims(&required);
            validation
        };
        let mut keys = Vec::new();
        if let Some(secret) = &config.hs256_secret {
            if secret.expose().len() < 32 {
                return Err(AuthConfigError::WeakSecret(secret.expose().len()));
            }
            keys.push(VerificationKey {
                key_id: None,
                key: DecodingKey::from_secret(secret.expose().as_bytes()),
                validation: validation_for(Algorithm::HS256),
                collector_validation: collector_validation_for(Algorithm::HS256),
            });
        }
        for (index, public) in config.public_keys.iter().enumerate() {
            let (algorithm, name, parsed) = match public.algorithm.as_str() {
                "RS256" => (Algorithm::RS256, "RS256", DecodingKey::from_rsa_pem(public.pem.as_bytes())),
                "ES256" => (Algorithm::ES256, "ES256", DecodingKey::from_ec_pem(public.pem.as_bytes())),
                other => return Err(AuthConfigError::UnsupportedAlgorithm(other.to_owned())),
            };
            let key = parsed.map_err(|error| AuthConfigError::BadKey {
                index,
                algorithm: name,
                reason: error.to_string(),
            })?;
            keys.push(VerificationKey {
                key_id: public.key_id.clone(),
                key,
                validation: validation_for(algorithm),
                collector_validation: collector_validation_for(algorithm),
            });
        }
        if keys.is_empty() {
            return Err(AuthConfigError::NoKeys);
        }
        Ok(Self { keys, verified: Memo::new(VERIFIED_TOKENS) })
    }

    /// The caller named by an `Authorization` header value (or its absence).
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        self.authenticate_at(authorization, jsonwebtoken::get_current_timestamp())
    }

    /// [`Authenticator::authenticate`] at `now` (seconds since the Unix epoch). A token verified
    /// before is accepted again without checking its signature, until its `exp` (with the same
    /// leeway) has passed.
    fn authenticate_at(&self, authorization: Option<&str>, now: u64) -> Result<Caller, AuthError> {
        let token = bearer(authorization.ok_or(AuthError::Missing)?)?;
        if let Some(known) = self.verified.get(token) {
            return if now <= known.accepted_until { Ok(known) } else { Err(expired()) };
        }
        let caller = self.verify(token)?;
        self.verified.insert(token.into(), caller.clone());
        Ok(caller)
    }

    /// The caller `token` names, when its signature and claims verify.
    fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        caller_of(self.verify_claims::<Claims>(token, |key| &key.validation)?)
    }

    /// The collector a credential (`Authorization` header value) names, and when it was issued.
    /// API tokens are refused here, and credentials by the API: their audiences differ.
    pub fn collector(&self, authorization: Option<&str>) -> Result<CollectorClaims, AuthError> {
        let token = bearer(authorization.ok_or(AuthError::Missing)?)?;
        self.verify_claims::<CollectorClaims>(token, |key| &key.collector_validation)
    }

    /// The claims of `token`, when its signature and claims verify under `validation`.
    ///
    /// A token naming a `kid` is checked against the key with that id only; a token without one
    /// against every key of its algorithm in turn (several keys are configured while one rotates).
    fn verify_claims<T: serde::de::DeserializeOwned>(
        &self, token: &str, validation: impl Fn(&VerificationKey) -> &Validation,
    ) -> Result<T, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|error| AuthError::InvalidToken(format!("token is not a signed JWT: {error}")))?;
        let of_algorithm = || self.keys.iter().filter(|key| key.validation.algorithms.contains(&header.alg));
        let candidates: Vec<&VerificationKey> = match &header.kid {
            Some(kid) => of_algorithm().filter(|key| key.key_id.as_deref() == Some(kid.as_str())).collect(),
            None => of_algorithm().collect(),
        };
        if candidates.is_empty() {
            return Err(AuthError::InvalidToken(match &header.kid {
                Some(kid) => format!("no {:?} key has the id {kid:?}", header.alg),
                None => format!("tokens signed with {:?} are not accepted", header.alg),
            }));
        }
        for key in candidates {
            match jsonwebtoken::decode::<T>(token, &key.key, validation(key)) {
                Ok(decoded) => return Ok(decoded.claims),
                // another key of the same algorithm may have signed it
                Err(error) if *error.kind() == ErrorKind::InvalidSignature => continue,
                Err(error) => return Err(token_refusal(&error)),
            }
        }
        Err(AuthError::InvalidToken("token signature does not verify".into()))
    }
}

/// The token of an `Authorization: Bearer <token>` header value.
fn bearer(header: &str) -> Result<&str, AuthError> {
    match header.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => Ok(token.trim()),
        _ => Err(AuthError::InvalidRequest("authorization header must be `Bearer <token>`".into())),
    }
}

/// The caller verified claims name.
fn caller_of(claims: Claims) -> Result<Caller, AuthError> {
    let org = claims
        .org
        .parse::<OrgId>()
        .map_err(|error| AuthError::InvalidToken(format!("token org claim is invalid: {error}")))?;
    let clearance = claims
        .clearance
        .parse::<Clearance>()
        .map_err(|error| AuthError::InvalidToken(format!("token clearance claim is invalid: {error}")))?;
    let accepted_until = claims.exp.saturating_add(LEEWAY_SECONDS);
    Ok(Caller { subject: claims.sub, org, clearance, role: claims.role, accepted_until })
}

/// The refusal a token's verification error stands for.
fn token_refusal(error: &jsonwebtoken::errors::Error) -> AuthError {
    AuthError::InvalidToken(match error.kind() {
        ErrorKind::ExpiredSignature => return expired(),
        ErrorKind::ImmatureSignature => "token is not valid yet (nbf)".to_owned(),
        ErrorKind::InvalidSignature => "token signature does not verify".to_owned(),
        ErrorKind::InvalidIssuer => "token issuer is not accepted".to_owned(),
        ErrorKind::InvalidAudience => "token audience is not accepted".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => format!("token lacks the {claim} claim"),
        _ => format!("token is not acceptable: {error}"),
    })
}

fn expired() -> AuthError {
    AuthError::InvalidToken("token has expired".to_owned())
}

impl Caller {
    /// Refuses callers below `role`.
    pub fn require(&self, role: Role) -> Result<(), AuthError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(AuthError::InsufficientScope(format!("this operation needs the {role:?} role").to_lowercase()))
        }
    }
}

/// Signs an HS256 token or collector credential: `argus token` and tests.
pub fn mint_hs256(secret: &Secret, claims: &impl Serialize) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.expose().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::new("0123456789abcdef0123456789abcdef")
    }

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: "noc-1".into(),
            org: "acme".into(),
            clearance: "SECRET".into(),
            role: Role::Operator,
            exp,
            iat: None,
        }
    }

    fn authenticator() -> Authenticator {
        Authenticator::new(&AuthConfig { hs256_secret: Some(secret()), ..AuthConfig::default() }).expect("config")
    }

    fn later() -> u64 {
        jsonwebtoken::get_current_timestamp() + 600
    }

    #[test]
    fn a_valid_token_names_the_caller() {
        let token = mint_hs256(&secret(), &claims(later())).expect("mint");
        let caller = authenticator().authenticate(Some(&format!("Bearer {token}"))).expect("valid");
        assert_eq!(caller.org.as_str(), "acme");
        assert_eq!(caller.clearance, Clearance::Secret);
        assert_eq!(caller.role, Role::Operator);
    }

    #[test]
    fn refusals_follow_rfc_6750() {
        let auth = authenticator();
        assert_eq!(auth.authenticate(None), Err(AuthError::Missing));
        assert_eq!(auth.authenticate(None).expect_err("refused").challenge(), r#"Bearer realm="argus""#);
        assert!(matches!(auth.authenticate(Some("Basic abc")), Err(AuthError::InvalidRequest(_))));
        let expired = mint_hs256(&secret(), &claims(1_000)).expect("mint");
        let error = auth.authenticate(Some(&format!("Bearer {expired}"))).expect_err("refused");
        assert_eq!(error, AuthError::InvalidToken("token has expired".into()));
        assert!(error.challenge().contains(r#"error="invalid_token""#));
        let forged = mint_hs256(&Secret::new("another-secret-of-thirty-two-bytes!"), &claims(later())).expect("mint");
        let error = auth.authenticate(Some(&format!("Bearer {forged}"))).expect_err("refused");
        assert_eq!(error, AuthError::InvalidToken("token signature does not verify".into()));
    }

    #[test]
    fn a_verified_token_is_accepted_again_until_it_expires_and_only_by_its_authenticator() {
        let (auth, now) = (authenticator(), jsonwebtoken::get_current_timestamp());
        let header = format!("Bearer {}", mint_hs256(&secret(), &claims(now + 60)).expect("mint"));
        assert_eq!(auth.authenticate_at(Some(&header), now).expect("valid").org.as_str(), "acme");
        assert_eq!(
            auth.authenticate_at(Some(&header), now + 60 + LEEWAY_SECONDS).expect("still valid").subject,
            "noc-1"
        );
        let expired = auth.authenticate_at(Some(&header), now + 61 + LEEWAY_SECONDS).expect_err("expired");
        assert_eq!(expired, AuthError::InvalidToken("token has expired".into()));
        // another authenticator on the same thread verifies the token itself
        let other = Secret::new("another-secret-of-thirty-two-bytes!");
        let other =
            Authenticator::new(&AuthConfig { hs256_secret: Some(other), ..AuthConfig::default() }).expect("config");
        let error = other.authenticate_at(Some(&header), now).expect_err("not its token");
        assert_eq!(error, AuthError::InvalidToken("token signature does not verify".into()));
        assert!(auth.authenticate_at(Some(&header), now).is_ok(), "still known to the first");
    }

    #[test]
    fn secrets_never_print_and_weak_ones_are_refused() {
        assert_eq!(format!("{:?}", secret()), "Secret(<redacted>)");
        let weak = AuthConfig { hs256_secret: Some(Secret::new("short")), ..AuthConfig::default() };
        assert_eq!(Authenticator::new(&weak).expect_err("refused"), AuthConfigError::WeakSecret(5));
        assert_eq!(Authenticator::new(&AuthConfig::default()).expect_err("refused"), AuthConfigError::NoKeys);
    }

    #[test]
    fn collector_credentials_and_api_tokens_are_not_taken_for_each_other() {
        let auth = authenticator();
        let now = jsonwebtoken::get_current_timestamp();
        let credential = |aud: &str, exp: u64| {
            let claims = CollectorClaims { sub: "gw-1".into(), aud: aud.into(), exp, iat: now };
            format!("Bearer {}", mint_hs256(&secret(), &claims).expect("mint"))
        };
        let named = auth.collector(Some(&credential(COLLECTOR_AUDIENCE, now + 60))).expect("a credential");
        assert_eq!((named.sub.as_str(), named.iat), ("gw-1", now));
        assert!(auth.authenticate(Some(&credential(COLLECTOR_AUDIENCE, now + 60))).is_err(), "not an API token");
        let token = format!("Bearer {}", mint_hs256(&secret(), &claims(now + 60)).expect("mint"));
        assert!(matches!(auth.collector(Some(&token)), Err(AuthError::InvalidToken(_))), "not a credential");
        assert!(matches!(auth.collector(Some(&credential("elsewhere", now + 60))), Err(AuthError::InvalidToken(_))));
        assert_eq!(
            auth.collector(Some(&credential(COLLECTOR_AUDIENCE, 1_000))),
            Err(AuthError::InvalidToken("token has expired".into()))
        );
        assert_eq!(auth.collector(None), Err(AuthError::Missing));
    }
}
