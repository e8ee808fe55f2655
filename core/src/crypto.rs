//! Secrets, hashes and sealing. Every primitive comes from a maintained crate
//! (aws-lc-rs, sha2, argon2, subtle); this module only chooses and combines them.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A random token of `bytes` bytes, base64url without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // The system RNG failing leaves nothing safe to do.
    aws_lc_rs::rand::fill(&mut buf).expect("system random number generator failed");
    URL_SAFE_NO_PAD.encode(buf)
}

/// Whether `value` has the shape of a [`random_token`] of `bytes` bytes: whether the server
/// could have issued it, whoever sends it.
pub fn is_random_token(value: &str, bytes: usize) -> bool {
    value.len() == (bytes * 4).div_ceil(3) && URL_SAFE_NO_PAD.decode(value).is_ok_and(|b| b.len() == bytes)
}

/// Client secrets, codes, refresh tokens and session ids carry at least 256 random bits,
/// so a fast unsalted SHA-256 cannot be brute-forced and keeps the token endpoint fast.
/// `n` characters drawn uniformly from `alphabet` (at most 256 of them) by the system RNG.
pub fn random_chars(alphabet: &[u8], n: usize) -> String {
    // Rejection sampling: bytes past the largest multiple of the alphabet's size are drawn
    // again, so every character is equally likely.
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 32];
    while out.len() < n {
        aws_lc_rs::rand::fill(&mut buf).expect("system random number generator failed");
        for b in buf.iter().map(|b| *b as usize).filter(|b| *b < limit) {
            if out.len() < n {
                out.push(alphabet[b % alphabet.len()] as char);
            }
        }
    }
    out
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares a presented secret with a stored hash in constant time.
pub fn verify_secret(secret: &str, stored_hash: &str) -> bool {
    let presented = hash_secret(secret);
    presented.as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

/// Passwords are low-entropy: argon2id with the crate's default (OWASP) parameters.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    use argon2::PasswordHasher;
    use argon2::password_hash::SaltString;
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| argon2::password_hash::Error::Crypto)?;
    let salt = SaltString::encode_b64(&salt)?;
    Ok(argon2::Argon2::default().hash_password(password.as_bytes(), &salt)?.to_string())
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::PasswordVerifier;
    match argon2::PasswordHash::new(phc) {
        Ok(hash) => argon2::Argon2::default().verify_password(password.as_bytes(), &hash).is_ok(),
        Err(_) => false,
    }
}

/// A hash to verify against when the user does not exist, so that timing does not tell.
pub fn dummy_password_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("portcullis-timing-equaliser").unwrap_or_default())
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the encryption key must be 32 bytes, base64url")]
    BadKey,
    #[error("sealed data is corrupt or was sealed with another key")]
    Open,
}

/// AES-256-GCM sealing of data at rest (signing keys). Output: nonce || ciphertext || tag.
pub struct Sealer {
    key: LessSafeKey,
    fingerprint: String,
}

impl Sealer {
    pub fn from_base64(key: &str) -> Result<Self, SealError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(key.trim().trim_end_matches('='))
            .or_else(|_| base64::engine::general_purpose::STANDARD.decode(key.trim()))
            .map_err(|_| SealError::BadKey)?;
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| SealError::BadKey)?;
        Ok(Self { key: LessSafeKey::new(unbound), fingerprint: fingerprint(&bytes) })
    }

    /// What names the key without revealing it: see [`fingerprint`].
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn generate_key() -> String {
        random_token(32)
    }

    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).expect("system random number generator failed");
        let mut out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context), &mut out)
            .expect("AES-GCM sealing of a small buffer cannot fail");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&out);
        sealed
    }

    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut buf = body.to_vec();
        let plain = self.key.open_in_place(nonce, Aad::from(context), &mut buf).map_err(|_| SealError::Open)?;
        Ok(plain.to_vec())
    }
}

/// The fingerprint of an encryption key: HMAC-SHA-256 keyed with the key over a fixed label,
/// its first 16 bytes in hex. It tells two keys apart and reveals nothing of either (HMAC is
/// a PRF); stored with what the key sealed and written in exports.
fn fingerprint(key: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let tag = aws_lc_rs::hmac::sign(&key, b"portcullis encryption key fingerprint v1");
    hex::encode(&tag.as_ref()[..16])
}

/// The JWS algorithms (RFC 7518 §3) a client may sign its JWTs with, defined once: client
/// assertions (RFC 7523) and request objects (OIDC Core §6.1; these also unsigned, `none`,
/// where the client registered that). HMAC with its secret (`client_secret_jwt`), or its
/// own key (`private_key_jwt`); Ed25519 by either name, RFC 9864's `Ed25519` or the
/// `EdDSA` it deprecates. Registration and discovery read this list.
pub const CLIENT_JWT_ALGORITHMS: [&str; 12] =
    ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "EdDSA", "Ed25519"];

/// The asymmetric JWS algorithms (RFC 7518 §3) a proof of possession (RFC 9449 §4.2) may be
/// signed with, defined once: DPoP checks them, discovery and every DPoP challenge list them.
/// Ed25519 by either name (RFC 9864).
pub const PROOF_ALGORITHMS: [&str; 10] =
    ["ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA", "Ed25519"];

/// The JWS algorithms (RFC 7518 §3) tokens are signed with, defined once: configuration,
/// key generation, signing, discovery and the ID token's hashes all read this list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SigningAlgorithm {
    ES256,
    RS256,
    EdDSA,
}

impl SigningAlgorithm {
    pub const ALL: [SigningAlgorithm; 3] = [Self::ES256, Self::RS256, Self::EdDSA];

    /// The JOSE `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
            Self::EdDSA => "EdDSA",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// OIDC Core §3.1.3.6 (`at_hash`), §3.3.2.11 (`c_hash`): base64url of the left half of
    /// the value's hash, with the hash of the signing `alg`: SHA-256 for ES256 and RS256;
    /// SHA-512 for EdDSA, whose Ed25519 signs with SHA-512 (RFC 8032 §5.1).
    pub fn half_hash(self, value: &str) -> String {
        match self {
            Self::EdDSA => URL_SAFE_NO_PAD.encode(&sha2::Sha512::digest(value.as_bytes())[..32]),
            Self::ES256 | Self::RS256 => left_half_hash(value),
        }
    }
}

/// base64url of SHA-256's left half: `at_hash` (OIDC Core §3.1.3.6) for ES256/RS256.
pub fn left_half_hash(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// base64url of the whole SHA-256: PKCE's S256 (RFC 7636 §4.2), DPoP's `ath` and key
/// thumbprints (RFC 9449 §4.2, RFC 7638 §3).
pub fn s256(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(value.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealing_round_trips_and_detects_tampering() {
        let sealer = Sealer::from_base64(&Sealer::generate_key()).unwrap();
        let sealed = sealer.seal(b"private key", b"kid-1");
        assert_eq!(sealer.open(&sealed, b"kid-1").unwrap(), b"private key");
        assert!(sealer.open(&sealed, b"kid-2").is_err());
        let mut bad = sealed.clone();
        bad[20] ^= 1;
        assert!(sealer.open(&bad, b"kid-1").is_err());
    }

    #[test]
    fn a_fingerprint_tells_keys_apart_and_is_not_the_key() {
        let key = Sealer::generate_key();
        let a = Sealer::from_base64(&key).unwrap();
        assert_eq!(a.fingerprint(), Sealer::from_base64(&key).unwrap().fingerprint());
        assert_ne!(a.fingerprint(), Sealer::from_base64(&Sealer::generate_key()).unwrap().fingerprint());
        assert_eq!(a.fingerprint().len(), 32);
        let raw = hex::encode(URL_SAFE_NO_PAD.decode(&key).unwrap());
        assert!(!raw.contains(a.fingerprint()));
    }

    #[test]
    fn secrets_verify_in_constant_time_against_their_hash() {
        let secret = random_token(32);
        let hash = hash_secret(&secret);
        assert!(verify_secret(&secret, &hash));
        assert!(!verify_secret("wrong", &hash));
    }

    #[test]
    fn a_random_token_has_its_shape_and_nothing_else_does() {
        for bytes in [24, 32] {
            assert!(is_random_token(&random_token(bytes), bytes));
            assert!(!is_random_token(&random_token(bytes + 1), bytes));
        }
        assert!(!is_random_token(&"A".repeat(31), 24));
        assert!(!is_random_token(&format!("{}=", "A".repeat(31)), 24));
        assert!(!is_random_token(&"+".repeat(32), 24));
    }

    #[test]
    fn pkce_s256_is_unpadded_base64url_of_sha256() {
        assert_eq!(s256("dBjftJeZ4CVP-mJ0FODw0Uo1GuezVZVLhFx5M8OeQJc"), "E_yvoxgtG4TruHlv8W4YSR1Tdh3JsXw_X5awrRpRHjQ");
    }
}
