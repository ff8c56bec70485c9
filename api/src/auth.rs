//! Tokens (SPEC section 8): HS256 JWTs signed with the server's secret.
//!
//! A staff token names the staff member and their company; a customer token
//! names one conversation (and its company). The audience keeps the two apart,
//! so neither works on the other endpoint. A token proves identity only: role,
//! permissions and whether the staff member is still active are read from the
//! current state on every request and every subscription event.

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backchannel_domain::ids::{CompanyId, ConversationId, StaffId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

const STAFF_AUDIENCE: &str = "backchannel-staff";
const CUSTOMER_AUDIENCE: &str = "backchannel-customer";
const OPERATOR_AUDIENCE: &str = "backchannel-operator";
/// The subject of an operator token (it names no staff member or company).
const OPERATOR_SUBJECT: &str = "operator";
const ISSUER: &str = "backchannel";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The staff id, or the conversation id for a customer.
    sub: String,
    /// The company.
    cid: String,
    aud: String,
    iss: String,
    iat: u64,
    exp: u64,
}

/// Who a valid staff token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaffIdentity {
    pub staff: StaffId,
    pub company: CompanyId,
}

/// Who a valid customer token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustomerIdentity {
    pub conversation: ConversationId,
    pub company: CompanyId,
}

/// Why a token was refused. Clients only see `UNAUTHENTICATED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no token was given")]
    Missing,
    #[error("the token is invalid or has expired")]
    Invalid,
}

/// A minted token and when it expires.
#[derive(Debug, Clone)]
pub struct Minted {
    pub token: String,
    pub expires_at: SystemTime,
}

/// Mints and checks tokens with one secret.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    lifetime: Duration,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    pub fn new(secret: &[u8], lifetime: Duration) -> Self {
        Tokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            lifetime,
        }
    }

    pub fn mint_staff(&self, identity: StaffIdentity) -> Result<Minted, TokenError> {
        self.mint_staff_at(identity, SystemTime::now())
    }

    pub fn mint_customer(&self, identity: CustomerIdentity) -> Result<Minted, TokenError> {
        self.mint(
            identity.conversation.to_string(),
            identity.company.to_string(),
            CUSTOMER_AUDIENCE,
            SystemTime::now(),
        )
    }

    /// Mints a server operator's token: whoever runs the server (it reads the
    /// signing secret), not a member of any company. It only opens `GET /log`,
    /// the whole log of every company; the GraphQL endpoints refuse it.
    pub fn mint_operator(&self) -> Result<Minted, TokenError> {
        self.mint(
            OPERATOR_SUBJECT.to_owned(),
            String::new(),
            OPERATOR_AUDIENCE,
            SystemTime::now(),
        )
    }

    /// Whether `token` is a valid operator token.
    pub fn verify_operator(&self, token: &str) -> Result<(), TokenError> {
        let claims = self.verify(token, OPERATOR_AUDIENCE)?;
        if claims.sub != OPERATOR_SUBJECT {
            return Err(TokenError::Invalid);
        }
        Ok(())
    }

    /// Mints a staff token as if issued at `issued_at` (tests make expired ones).
    pub fn mint_staff_at(
        &self,
        identity: StaffIdentity,
        issued_at: SystemTime,
    ) -> Result<Minted, TokenError> {
        self.mint(
            identity.staff.to_string(),
            identity.company.to_string(),
            STAFF_AUDIENCE,
            issued_at,
        )
    }

    fn mint(
        &self,
        sub: String,
        cid: String,
        aud: &str,
        issued_at: SystemTime,
    ) -> Result<Minted, TokenError> {
        let iat = issued_at
            .duration_since(UNIX_EPOCH)
            .map_err(|_| TokenError::Invalid)?
            .as_secs();
        // A lifetime past what `SystemTime` can represent is refused, not a panic.
        let expires_at = issued_at
            .checked_add(self.lifetime)
            .ok_or(TokenError::Invalid)?;
        let claims = Claims {
            sub,
            cid,
            aud: aud.to_owned(),
            iss: ISSUER.to_owned(),
            iat,
            exp: iat.saturating_add(self.lifetime.as_secs()),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| TokenError::Invalid)?;
        Ok(Minted { token, expires_at })
    }

    pub fn verify_staff(&self, token: &str) -> Result<StaffIdentity, TokenError> {
        self.verify_staff_until(token).map(|(identity, _)| identity)
    }

    /// The staff identity and when the token expires (a websocket ends then).
    pub fn verify_staff_until(
        &self,
        token: &str,
    ) -> Result<(StaffIdentity, SystemTime), TokenError> {
        let (staff, company, expires_at) = self.verify_ids(token, STAFF_AUDIENCE)?;
        Ok((StaffIdentity { staff, company }, expires_at))
    }

    pub fn verify_customer(&self, token: &str) -> Result<CustomerIdentity, TokenError> {
        self.verify_customer_until(token)
            .map(|(identity, _)| identity)
    }

    /// The customer identity and when the token expires.
    pub fn verify_customer_until(
        &self,
        token: &str,
    ) -> Result<(CustomerIdentity, SystemTime), TokenError> {
        let (conversation, company, expires_at) = self.verify_ids(token, CUSTOMER_AUDIENCE)?;
        Ok((
            CustomerIdentity {
                conversation,
                company,
            },
            expires_at,
        ))
    }

    /// A verified token's subject and company, parsed as ids, and when it
    /// expires.
    fn verify_ids<S: FromStr, C: FromStr>(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<(S, C, SystemTime), TokenError> {
        let claims = self.verify(token, audience)?;
        Ok((
            claims.sub.parse().map_err(|_| TokenError::Invalid)?,
            claims.cid.parse().map_err(|_| TokenError::Invalid)?,
            expiry(&claims),
        ))
    }

    fn verify(&self, token: &str, audience: &str) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.leeway = 5;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|_| TokenError::Invalid)
    }
}

/// When a verified token expires (its `exp`, without the leeway granted to
/// other clocks: this server minted it).
fn expiry(claims: &Claims) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_secs(claims.exp))
        .unwrap_or(UNIX_EPOCH)
}

/// The token of an `Authorization: Bearer <token>` header value (or of a
/// websocket's `connection_init` payload). The scheme is case-insensitive
/// (RFC 9110 section 11.1): `BEARER x` and `bearer x` are accepted too.
pub(crate) fn bearer(header: Option<&str>) -> Result<&str, TokenError> {
    let value = header.ok_or(TokenError::Missing)?.trim();
    let (scheme, token) = value
        .split_once(|c: char| c.is_ascii_whitespace())
        .ok_or(TokenError::Invalid)?;
    if !scheme.eq_ignore_ascii_case("Bearer") {
        return Err(TokenError::Invalid);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(TokenError::Missing);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(&[7; 32], Duration::from_secs(3600))
    }

    fn identity() -> StaffIdentity {
        StaffIdentity {
            staff: StaffId::new(),
            company: CompanyId::new(),
        }
    }

    #[test]
    fn a_lifetime_past_the_clock_is_refused_not_a_panic() {
        let tokens = Tokens::new(&[7; 32], Duration::MAX);
        assert!(tokens.mint_staff(identity()).is_err());
    }

    #[test]
    fn staff_tokens_round_trip() {
        let me = identity();
        let minted = tokens().mint_staff(me).map(|m| m.token);
        assert_eq!(minted.and_then(|t| tokens().verify_staff(&t)), Ok(me));
    }

    #[test]
    fn expired_tokens_are_refused() {
        let old = SystemTime::now() - Duration::from_secs(7200);
        let minted = tokens().mint_staff_at(identity(), old).map(|m| m.token);
        assert_eq!(
            minted.and_then(|t| tokens().verify_staff(&t)),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn a_customer_token_is_not_a_staff_token() {
        let customer = CustomerIdentity {
            conversation: ConversationId::new(),
            company: CompanyId::new(),
        };
        let minted = tokens().mint_customer(customer).map(|m| m.token);
        assert_eq!(
            minted.and_then(|t| tokens().verify_staff(&t)),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn operator_tokens_are_neither_staff_nor_customer_tokens() {
        let minted = tokens().mint_operator().map(|m| m.token);
        let token = minted.unwrap_or_default();
        assert_eq!(tokens().verify_operator(&token), Ok(()));
        assert_eq!(tokens().verify_staff(&token), Err(TokenError::Invalid));
        assert_eq!(tokens().verify_customer(&token), Err(TokenError::Invalid));
        let staff = tokens().mint_staff(identity()).map(|m| m.token);
        assert_eq!(
            staff.and_then(|t| tokens().verify_operator(&t)),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn another_secret_is_refused() {
        let minted = tokens().mint_staff(identity()).map(|m| m.token);
        let other = Tokens::new(&[8; 32], Duration::from_secs(3600));
        assert_eq!(
            minted.and_then(|t| other.verify_staff(&t)),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn bearer_headers_are_parsed() {
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(None), Err(TokenError::Missing));
        assert_eq!(bearer(Some("Basic abc")), Err(TokenError::Invalid));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        // RFC 9110 section 11.1: the auth scheme is case-insensitive.
        for header in ["BEARER abc", "bearer abc", "BeArEr  abc", "Bearer\tabc"] {
            assert_eq!(bearer(Some(header)), Ok("abc"), "{header:?}");
        }
        assert_eq!(bearer(Some("Bearerabc")), Err(TokenError::Invalid));
        assert_eq!(bearer(Some("Bearer")), Err(TokenError::Invalid));
    }
}
