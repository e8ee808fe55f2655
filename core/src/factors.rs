//! A user's second factors and what signing in with them is worth.
//!
//! - The level of assurance and the methods of a sign-in (OIDC Core §2 `acr`, `amr`; RFC 8176
//!   §2 method values): a password alone is `acr` "1", `amr` `["pwd"]`; a password and a code
//!   of an authenticator app or a recovery code "2", `["pwd", "otp", "mfa"]`; a password and a
//!   passkey "2", `["pwd", "hwk" | "swk", "mfa"]`; a passkey alone, with user verification
//!   required (possession and a PIN or biometric), "2", `["hwk" | "swk", "mfa"]`.
//! - Authenticator apps (RFC 6238 TOTP, with RFC 4226's HOTP: SHA-1, six digits, 30 s steps,
//!   one step either way): the secret sealed with the server's encryption key and bound to
//!   the user (`Keys::seal_factor_secret`); a code is accepted once, for a time step later
//!   than the last one accepted (RFC 6238 §5.2).
//! - Recovery codes: ten at once, 80 random bits each, kept as SHA-256 hashes bound to the
//!   user, each spent once; a new set replaces the old.
//! - Passkeys (WebAuthn Level 3, through webauthn-rs): the relying party id is the issuer's
//!   host, the origin the issuer's; user verification is required; the ceremony state is
//!   parked in a record between the page that starts it and the form that finishes it.
//!
//! Every change to a user's factors is one record written at the revision it was read at,
//! so that two uses of one code (or one recovery code) cannot both succeed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::audit::{self, types};
use crate::crypto::{hash_secret, random_chars};
use crate::keys::Keys;
use crate::limits;
use crate::model::{Assurance, PasskeyFactor, PendingCeremony, RecoveryCode, TotpFactor, UserFactors};
use crate::storage::{Loaded, Storage, StorageError, write};

/// OIDC Core §2 `acr` values this server meets: one factor, two factors.
pub const ACR_ONE: &str = "1";
pub const ACR_TWO: &str = "2";
/// Every `acr` value, for discovery's `acr_values_supported`.
pub const ACR_VALUES: [&str; 2] = [ACR_ONE, ACR_TWO];

/// RFC 8176 §2 authentication method reference values.
pub mod amr {
    pub const PASSWORD: &str = "pwd";
    pub const OTP: &str = "otp";
    pub const HARDWARE_KEY: &str = "hwk";
    pub const SOFTWARE_KEY: &str = "swk";
    pub const MULTIPLE: &str = "mfa";
}

/// A password alone.
pub fn password() -> Assurance {
    Assurance { acr: ACR_ONE.into(), amr: vec![amr::PASSWORD.into()] }
}

/// A password and an authenticator app's code or a recovery code.
pub fn password_and_otp() -> Assurance {
    Assurance { acr: ACR_TWO.into(), amr: vec![amr::PASSWORD.into(), amr::OTP.into(), amr::MULTIPLE.into()] }
}

fn key_method(hardware: bool) -> String {
    if hardware { amr::HARDWARE_KEY } else { amr::SOFTWARE_KEY }.into()
}

/// A password and a passkey.
pub fn password_and_passkey(hardware: bool) -> Assurance {
    Assurance { acr: ACR_TWO.into(), amr: vec![amr::PASSWORD.into(), key_method(hardware), amr::MULTIPLE.into()] }
}

/// A passkey alone, its user verified: something held and something known or been.
pub fn passkey_alone(hardware: bool) -> Assurance {
    Assurance { acr: ACR_TWO.into(), amr: vec![key_method(hardware), amr::MULTIPLE.into()] }
}

/// What a record's assurance says: unset (written before it was kept) is a password.
pub fn effective(assurance: Option<&Assurance>) -> Assurance {
    match assurance {
        Some(a) if !a.acr.is_empty() => a.clone(),
        _ => password(),
    }
}

/// Whether a sign-in reached two factors.
pub fn is_two_factor(assurance: Option<&Assurance>) -> bool {
    effective(assurance).acr == ACR_TWO
}

/// What a request asks of the sign-in's level (OIDC Core §3.1.2.1 `acr_values`, §5.5.1.1
/// `acr` in the `claims` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demand {
    /// Nothing more than a password.
    None,
    /// Two factors, voluntarily: a person without a second factor signs in with one.
    Voluntary,
    /// Two factors, essential: without a second factor the request fails.
    Essential,
}

/// The demand of `acr_values` and of the `claims` parameter's `acr` (in `id_token` or
/// `userinfo`): "2" among `acr_values` is voluntary (OIDC Core §3.1.2.1); `acr` asked for
/// as essential with `value` "2" or "2" among its `values` is essential (§5.5.1.1).
pub fn demand(acr_values: &[String], claims: Option<&str>) -> Demand {
    let essential = claims.and_then(|c| serde_json::from_str::<Value>(c).ok()).is_some_and(|claims| {
        ["id_token", "userinfo"].iter().any(|target| {
            let acr = &claims[*target]["acr"];
            let wants_two =
                acr["value"] == ACR_TWO || acr["values"].as_array().is_some_and(|v| v.iter().any(|v| v == ACR_TWO));
            acr["essential"] == true && wants_two
        })
    });
    if essential {
        Demand::Essential
    } else if acr_values.iter().any(|v| v == ACR_TWO) {
        Demand::Voluntary
    } else {
        Demand::None
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FactorError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the stored authenticator secret does not open with this server's encryption key")]
    Sealed,
    #[error("authenticator app: {0}")]
    Totp(String),
    #[error("passkey: {0}")]
    Passkey(String),
    /// The request does not fit the user's factors as they are (no enrolment begun, nothing
    /// to remove).
    #[error("{0}")]
    NotApplicable(&'static str),
}

/// A user's factors as stored, with the revision to write them back at (none: not stored yet).
pub struct Stored {
    pub factors: UserFactors,
    revision: Option<u64>,
}

pub async fn load(storage: &Storage, user_id: &str) -> Result<Stored, StorageError> {
    Ok(match storage.get_loaded::<UserFactors>(user_id).await? {
        Some(Loaded { value, revision, .. }) => Stored { factors: value, revision: Some(revision) },
        None => Stored { factors: UserFactors { user_id: user_id.to_owned(), ..Default::default() }, revision: None },
    })
}

impl Stored {
    /// The write of these factors at the revision they were read at: `Conflict` when another
    /// request changed them meanwhile.
    pub fn write(&self) -> Result<crate::plugin::store::Write, StorageError> {
        match self.revision {
            Some(revision) => write::update(&self.factors, revision),
            None => write::create(&self.factors),
        }
    }

    pub async fn save(&self, storage: &Storage) -> Result<(), StorageError> {
        storage.apply(vec![self.write()?]).await
    }
}

/// Whether the user has a second factor to be asked for.
pub async fn has_any(storage: &Storage, user_id: &str) -> Result<bool, StorageError> {
    Ok(storage.get::<UserFactors>(user_id).await?.is_some_and(|f| f.any()))
}

// Authenticator apps (RFC 6238)

/// An authenticator app being added, as the security page shows it.
pub struct TotpSetup {
    /// The secret, base32 (RFC 4648 §6), for typing in.
    pub secret: String,
    /// The `otpauth://totp/...` URI the QR code carries.
    pub uri: String,
    /// The QR code, SVG markup.
    pub qr_svg: String,
}

/// The issuer's host, which names this server in authenticator apps (a colon is not allowed
/// there, so no port).
fn app_issuer(issuer: &str) -> String {
    url::Url::parse(issuer).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_else(|| "portcullis".into())
}

fn totp(secret: Vec<u8>, issuer: &str, account: &str) -> Result<totp_rs::Totp, FactorError> {
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(limits::TOTP_DIGITS as u8)
        .with_skew(u16::from(limits::TOTP_SKEW_STEPS))
        .with_step_duration(limits::TOTP_STEP_SECONDS)
        .with_secret(secret)
        .with_issuer(Some(app_issuer(issuer)))
        .with_account_name(account.replace(':', "_"))
        .build()
        .map_err(|e| FactorError::Totp(e.to_string()))
}

fn open_secret(keys: &Keys, user_id: &str, factor: &TotpFactor) -> Result<Vec<u8>, FactorError> {
    keys.open_factor_secret(user_id, &factor.sealed_secret).ok_or(FactorError::Sealed)
}

/// Begins adding an authenticator app (again, if one was being added): a new secret, sealed
/// in the pending slot until a first code confirms it.
pub async fn begin_totp(storage: &Storage, keys: &Keys, user_id: &str, now: i64) -> Result<(), FactorError> {
    let mut stored = load(storage, user_id).await?;
    let mut secret = vec![0u8; limits::TOTP_SECRET_BYTES];
    aws_lc_rs::rand::fill(&mut secret).map_err(|_| FactorError::Totp("no randomness".into()))?;
    stored.factors.pending_totp = Some(TotpFactor {
        sealed_secret: keys.seal_factor_secret(user_id, &secret),
        created_at: now,
        ..Default::default()
    });
    stored.save(storage).await?;
    Ok(())
}

/// The authenticator app being added, for the page: secret, URI and QR code.
pub fn totp_setup(
    keys: &Keys,
    factors: &UserFactors,
    issuer: &str,
    account: &str,
) -> Result<Option<TotpSetup>, FactorError> {
    let Some(pending) = &factors.pending_totp else { return Ok(None) };
    let totp = totp(open_secret(keys, &factors.user_id, pending)?, issuer, account)?;
    let uri = totp.to_url().map_err(|e| FactorError::Totp(e.to_string()))?;
    let qr = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| FactorError::Totp(e.to_string()))?;
    let qr_svg = qr.render::<qrcode::render::svg::Color<'_>>().min_dimensions(200, 200).build();
    Ok(Some(TotpSetup { secret: totp.secret().to_base32(), uri, qr_svg }))
}

/// The time step `code` is right for, later than `last_step` (RFC 6238 §5.2: a code is
/// accepted once), or none.
fn totp_step(secret: Vec<u8>, code: &str, now: i64, last_step: Option<u64>) -> Result<Option<u64>, FactorError> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != limits::TOTP_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let totp = totp(secret, "", "")?;
    let now = u64::try_from(now).unwrap_or(0);
    let origin = now / limits::TOTP_STEP_SECONDS;
    let skew = u64::from(limits::TOTP_SKEW_STEPS);
    // The steps are tried oldest first: a code of the step before counts as that step.
    let step = totp.check(&code, now).filter(|s| (origin.saturating_sub(skew)..=origin + skew).contains(s));
    Ok(step.filter(|s| last_step.is_none_or(|last| *s > last)))
}

/// Confirms the authenticator app being added with its first code: it becomes the user's,
/// and ten new recovery codes are made, returned to be shown once. `None`: a wrong code.
pub async fn confirm_totp(
    storage: &Storage,
    keys: &Keys,
    user_id: &str,
    code: &str,
    now: i64,
) -> Result<Option<Vec<String>>, FactorError> {
    let mut stored = load(storage, user_id).await?;
    let Some(pending) = stored.factors.pending_totp.clone() else {
        return Err(FactorError::NotApplicable("no authenticator app is being added"));
    };
    let Some(step) = totp_step(open_secret(keys, user_id, &pending)?, code, now, None)? else { return Ok(None) };
    stored.factors.totp = Some(TotpFactor { confirmed_at: Some(now), last_step: Some(step), ..pending });
    stored.factors.pending_totp = None;
    let (codes, hashed) = new_recovery_codes(user_id);
    stored.factors.recovery_codes = hashed;
    stored.save(storage).await?;
    let actor = audit::user(user_id);
    audit::record(storage, types::FACTOR_TOTP_ENABLED, &actor, ("user", user_id), Value::Null).await;
    audit::record(storage, types::FACTOR_RECOVERY_REGENERATED, &actor, ("user", user_id), Value::Null).await;
    Ok(Some(codes))
}

/// Removes the authenticator app, asked with one of its current codes (or a recovery code);
/// with no passkey left, the recovery codes go too. `false`: a wrong code.
pub async fn remove_totp(
    storage: &Storage,
    keys: &Keys,
    user_id: &str,
    code: &str,
    now: i64,
) -> Result<bool, FactorError> {
    let mut stored = load(storage, user_id).await?;
    if stored.factors.totp.is_none() {
        return Err(FactorError::NotApplicable("no authenticator app to remove"));
    }
    match check_code(keys, &mut stored.factors, code, now)? {
        CodeUsed::Wrong => return Ok(false),
        CodeUsed::Recovery => recovery_used(storage, user_id).await,
        CodeUsed::Totp => {}
    }
    stored.factors.totp = None;
    if stored.factors.passkeys.is_empty() {
        stored.factors.recovery_codes.clear();
    }
    stored.save(storage).await?;
    audit::record(storage, types::FACTOR_TOTP_REMOVED, &audit::user(user_id), ("user", user_id), Value::Null).await;
    Ok(true)
}

// Recovery codes

const RECOVERY_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// A recovery code as typed: lower case, without spaces or hyphens.
fn normalise_recovery(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect()
}

fn recovery_hash(user_id: &str, code: &str) -> String {
    hash_secret(&format!("recovery-code\n{user_id}\n{}", normalise_recovery(code)))
}

/// Ten new recovery codes, grouped by four (`abcd-efgh-jkmn-pqrs`), and their hashes.
fn new_recovery_codes(user_id: &str) -> (Vec<String>, Vec<RecoveryCode>) {
    let codes: Vec<String> = (0..limits::RECOVERY_CODES)
        .map(|_| {
            let raw = random_chars(RECOVERY_ALPHABET, limits::RECOVERY_CODE_CHARS);
            raw.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("-")
        })
        .collect();
    let hashed = codes.iter().map(|c| RecoveryCode { hash: recovery_hash(user_id, c), used_at: None }).collect();
    (codes, hashed)
}

/// Replaces the user's recovery codes with ten new ones, returned to be shown once. Only a
/// user with a second factor has them.
pub async fn regenerate_recovery(storage: &Storage, user_id: &str) -> Result<Vec<String>, FactorError> {
    let mut stored = load(storage, user_id).await?;
    if !stored.factors.any() {
        return Err(FactorError::NotApplicable("recovery codes come with a second factor"));
    }
    let (codes, hashed) = new_recovery_codes(user_id);
    stored.factors.recovery_codes = hashed;
    stored.save(storage).await?;
    let actor = audit::user(user_id);
    audit::record(storage, types::FACTOR_RECOVERY_REGENERATED, &actor, ("user", user_id), Value::Null).await;
    Ok(codes)
}

/// How many recovery codes are left unused.
pub fn recovery_left(factors: &UserFactors) -> u32 {
    u32::try_from(factors.recovery_codes.iter().filter(|c| c.used_at.is_none()).count()).unwrap_or(u32::MAX)
}

async fn recovery_used(storage: &Storage, user_id: &str) {
    audit::record(storage, types::FACTOR_RECOVERY_USED, &audit::user(user_id), ("user", user_id), Value::Null).await;
}

/// What a typed code turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeUsed {
    Totp,
    Recovery,
    Wrong,
}

/// Checks a code against the factors in hand, spending it there (the caller writes them):
/// the authenticator app's for a time step not used yet, else an unused recovery code.
fn check_code(keys: &Keys, factors: &mut UserFactors, code: &str, now: i64) -> Result<CodeUsed, FactorError> {
    if code.len() > limits::MAX_FACTOR_CODE_BYTES {
        return Ok(CodeUsed::Wrong);
    }
    if let Some(app) = &mut factors.totp {
        let secret = open_secret(keys, &factors.user_id, app)?;
        if let Some(step) = totp_step(secret, code, now, app.last_step)? {
            app.last_step = Some(step);
            return Ok(CodeUsed::Totp);
        }
    }
    let hash = recovery_hash(&factors.user_id, code);
    let unused = factors
        .recovery_codes
        .iter_mut()
        .filter(|c| c.used_at.is_none())
        .find(|c| bool::from(subtle::ConstantTimeEq::ct_eq(c.hash.as_bytes(), hash.as_bytes())));
    match unused {
        Some(recovery) if normalise_recovery(code).len() == limits::RECOVERY_CODE_CHARS => {
            recovery.used_at = Some(now);
            Ok(CodeUsed::Recovery)
        }
        _ => Ok(CodeUsed::Wrong),
    }
}

/// Checks and spends a code typed as the second factor. Of two concurrent uses of one code,
/// one succeeds: the other finds the record changed and is checked again against it.
pub async fn use_code(
    storage: &Storage,
    keys: &Keys,
    user_id: &str,
    code: &str,
    now: i64,
) -> Result<CodeUsed, FactorError> {
    for _ in 0..3 {
        let mut stored = load(storage, user_id).await?;
        let used = check_code(keys, &mut stored.factors, code, now)?;
        if used == CodeUsed::Wrong {
            return Ok(used);
        }
        match stored.save(storage).await {
            Ok(()) => {
                if used == CodeUsed::Recovery {
                    recovery_used(storage, user_id).await;
                }
                return Ok(used);
            }
            Err(StorageError::Conflict(_) | StorageError::Duplicate) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(CodeUsed::Wrong)
}

// Administration

/// Removes every second factor of a user (an administrator's reset: the person lost them):
/// they sign in with their password again, and may add new ones. `false`: they had none.
pub async fn reset(storage: &Storage, user_id: &str) -> Result<bool, StorageError> {
    let had = storage.get::<UserFactors>(user_id).await?.is_some();
    if had {
        storage.apply(vec![write::delete::<UserFactors>(user_id)]).await?;
    }
    Ok(had)
}

// Passkeys (WebAuthn)

/// The WebAuthn relying party of an issuer: its host is the RP id, its origin the origin.
fn webauthn(issuer: &str) -> Result<webauthn_rs::Webauthn, FactorError> {
    let origin = url::Url::parse(issuer).map_err(|e| FactorError::Passkey(e.to_string()))?;
    let rp_id = origin.host_str().ok_or(FactorError::Passkey("the issuer has no host".into()))?.to_owned();
    webauthn_rs::WebauthnBuilder::new(&rp_id, &origin)
        .and_then(|b| b.rp_name(&rp_id).build())
        .map_err(|e| FactorError::Passkey(e.to_string()))
}

fn to_value<T: serde::Serialize>(value: &T) -> Result<Value, FactorError> {
    serde_json::to_value(value).map_err(|e| FactorError::Passkey(e.to_string()))
}

fn from_value<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, FactorError> {
    serde_json::from_value(value.clone()).map_err(|e| FactorError::Passkey(e.to_string()))
}

/// The options a page runs `navigator.credentials.*` with: the `publicKey` member, JSON.
fn options_json<T: serde::Serialize>(challenge: &T) -> Result<String, FactorError> {
    let mut v = to_value(challenge)?;
    let public_key = v.get_mut("publicKey").map(Value::take).unwrap_or(Value::Null);
    serde_json::to_string(&public_key).map_err(|e| FactorError::Passkey(e.to_string()))
}

fn passkeys_of(factors: &UserFactors) -> Vec<webauthn_rs::prelude::Passkey> {
    factors.passkeys.iter().filter_map(|p| serde_json::from_value(p.credential.clone()).ok()).collect()
}

/// Begins adding a passkey: the creation options for the page, the state parked with the
/// user's factors. The credential is made discoverable (a resident key), so that it can
/// sign in without a username.
pub async fn begin_passkey(
    storage: &Storage,
    issuer: &str,
    user_id: &str,
    username: &str,
    display_name: &str,
    now: i64,
) -> Result<String, FactorError> {
    let mut stored = load(storage, user_id).await?;
    if stored.factors.passkeys.len() >= limits::MAX_PASSKEYS {
        return Err(FactorError::NotApplicable("this account has as many passkeys as it may"));
    }
    let handle = match &stored.factors.passkey_handle {
        Some(h) => uuid::Uuid::parse_str(h).map_err(|e| FactorError::Passkey(e.to_string()))?,
        None => uuid::Uuid::new_v4(),
    };
    stored.factors.passkey_handle = Some(handle.to_string());
    let exclude: Vec<_> = passkeys_of(&stored.factors).iter().map(|p| p.cred_id().clone()).collect();
    let (challenge, state) = webauthn(issuer)?
        .start_passkey_registration(handle, username, display_name, Some(exclude))
        .map_err(|e| FactorError::Passkey(e.to_string()))?;
    let mut options: Value = serde_json::from_str(&options_json(&challenge)?).unwrap_or(Value::Null);
    // WebAuthn Level 3 §5.4.4: ask for a discoverable credential.
    if let Some(selection) = options.get_mut("authenticatorSelection").and_then(Value::as_object_mut) {
        selection.insert("residentKey".into(), "required".into());
        selection.insert("requireResidentKey".into(), true.into());
    }
    let options = options.to_string();
    stored.factors.passkey_registration = Some(PendingCeremony {
        state: to_value(&state)?,
        options: options.clone(),
        expires_at: now + limits::PASSKEY_CEREMONY_SECS,
    });
    stored.save(storage).await?;
    Ok(options)
}

/// Whether a WebAuthn response reports a separate device (`authenticatorAttachment`
/// `cross-platform`, WebAuthn Level 3 §5.1): a hardware key (RFC 8176 `hwk`), else `swk`.
fn reports_hardware(response: &Value) -> bool {
    response["authenticatorAttachment"] == "cross-platform"
}

/// Finishes adding a passkey with the page's response, under the name the person gave it.
pub async fn finish_passkey(
    storage: &Storage,
    issuer: &str,
    user_id: &str,
    name: &str,
    response: &str,
    now: i64,
) -> Result<(), FactorError> {
    let mut stored = load(storage, user_id).await?;
    let Some(pending) = stored.factors.passkey_registration.take().filter(|p| p.expires_at > now) else {
        return Err(FactorError::NotApplicable("no passkey is being added"));
    };
    let response: Value = serde_json::from_str(response).map_err(|e| FactorError::Passkey(e.to_string()))?;
    let credential: webauthn_rs::prelude::RegisterPublicKeyCredential = from_value(&response)?;
    let state: webauthn_rs::prelude::PasskeyRegistration = from_value(&pending.state)?;
    let passkey = webauthn(issuer)?
        .finish_passkey_registration(&credential, &state)
        .map_err(|e| FactorError::Passkey(e.to_string()))?;
    let id = URL_SAFE_NO_PAD.encode(passkey.cred_id().as_ref());
    let name: String = name.trim().chars().take(limits::MAX_PASSKEY_NAME_CHARS).collect();
    stored.factors.passkeys.retain(|p| p.id != id);
    stored.factors.passkeys.push(PasskeyFactor {
        id: id.clone(),
        name,
        created_at: now,
        last_used_at: None,
        hardware: reports_hardware(&response),
        credential: to_value(&passkey)?,
    });
    stored.save(storage).await?;
    let detail = serde_json::json!({ "passkey": id });
    audit::record(storage, types::FACTOR_PASSKEY_ADDED, &audit::user(user_id), ("user", user_id), detail).await;
    Ok(())
}

/// Removes one of the user's passkeys; with no factor left, the recovery codes go too.
/// `false`: no such passkey.
pub async fn remove_passkey(storage: &Storage, user_id: &str, id: &str) -> Result<bool, FactorError> {
    let mut stored = load(storage, user_id).await?;
    let before = stored.factors.passkeys.len();
    stored.factors.passkeys.retain(|p| p.id != id);
    if stored.factors.passkeys.len() == before {
        return Ok(false);
    }
    if !stored.factors.any() {
        stored.factors.recovery_codes.clear();
    }
    stored.save(storage).await?;
    let detail = serde_json::json!({ "passkey": id });
    audit::record(storage, types::FACTOR_PASSKEY_REMOVED, &audit::user(user_id), ("user", user_id), detail).await;
    Ok(true)
}

/// A passkey ceremony asking one user's passkeys (the second factor): its options and state.
pub fn passkey_challenge(
    issuer: &str,
    factors: &UserFactors,
    now: i64,
) -> Result<Option<PendingCeremony>, FactorError> {
    let passkeys = passkeys_of(factors);
    if passkeys.is_empty() {
        return Ok(None);
    }
    let (challenge, state) =
        webauthn(issuer)?.start_passkey_authentication(&passkeys).map_err(|e| FactorError::Passkey(e.to_string()))?;
    Ok(Some(PendingCeremony {
        state: to_value(&state)?,
        options: options_json(&challenge)?,
        expires_at: now + limits::PASSKEY_CEREMONY_SECS,
    }))
}

/// A passkey ceremony naming no user (sign-in with a discoverable credential instead of a
/// password): its options and state.
pub fn discoverable_challenge(issuer: &str, now: i64) -> Result<PendingCeremony, FactorError> {
    let (challenge, state) =
        webauthn(issuer)?.start_discoverable_authentication().map_err(|e| FactorError::Passkey(e.to_string()))?;
    Ok(PendingCeremony {
        state: to_value(&state)?,
        options: options_json(&challenge)?,
        expires_at: now + limits::PASSKEY_CEREMONY_SECS,
    })
}

/// Records a passkey's use on the factors in hand: its counter, when it was used. Whether
/// it is a hardware key.
fn passkey_used(factors: &mut UserFactors, result: &webauthn_rs::prelude::AuthenticationResult, now: i64) -> bool {
    let id = URL_SAFE_NO_PAD.encode(result.cred_id().as_ref());
    let Some(stored) = factors.passkeys.iter_mut().find(|p| p.id == id) else { return false };
    if let Ok(mut passkey) = serde_json::from_value::<webauthn_rs::prelude::Passkey>(stored.credential.clone()) {
        passkey.update_credential(result);
        if let Ok(v) = serde_json::to_value(&passkey) {
            stored.credential = v;
        }
    }
    stored.last_used_at = Some(now);
    stored.hardware
}

/// Checks the page's response to a second-factor passkey ceremony for `user_id`: whether it
/// is a hardware key, or none when it does not verify.
pub async fn use_passkey(
    storage: &Storage,
    issuer: &str,
    user_id: &str,
    ceremony: &PendingCeremony,
    response: &str,
    now: i64,
) -> Result<Option<bool>, FactorError> {
    if ceremony.expires_at <= now || response.len() > limits::MAX_PASSKEY_RESPONSE_BYTES {
        return Ok(None);
    }
    let Ok(credential) = serde_json::from_str::<webauthn_rs::prelude::PublicKeyCredential>(response) else {
        return Ok(None);
    };
    let state: webauthn_rs::prelude::PasskeyAuthentication = from_value(&ceremony.state)?;
    let Ok(result) = webauthn(issuer)?.finish_passkey_authentication(&credential, &state) else { return Ok(None) };
    let mut stored = load(storage, user_id).await?;
    let hardware = passkey_used(&mut stored.factors, &result, now);
    stored.save(storage).await?;
    Ok(Some(hardware))
}

/// Checks the page's response to a discoverable passkey ceremony: the user it names, and
/// whether it is a hardware key, or none when it does not verify.
pub async fn use_discoverable(
    storage: &Storage,
    issuer: &str,
    ceremony: &PendingCeremony,
    response: &str,
    now: i64,
) -> Result<Option<(String, bool)>, FactorError> {
    if ceremony.expires_at <= now || response.len() > limits::MAX_PASSKEY_RESPONSE_BYTES {
        return Ok(None);
    }
    let Ok(credential) = serde_json::from_str::<webauthn_rs::prelude::PublicKeyCredential>(response) else {
        return Ok(None);
    };
    let webauthn = webauthn(issuer)?;
    let Ok((handle, _)) = webauthn.identify_discoverable_authentication(&credential) else { return Ok(None) };
    let Some(factors) = storage.find::<UserFactors>("passkey-handle", &handle.to_string()).await?.into_iter().next()
    else {
        return Ok(None);
    };
    let keys: Vec<webauthn_rs::prelude::DiscoverableKey> =
        passkeys_of(&factors).iter().map(webauthn_rs::prelude::DiscoverableKey::from).collect();
    let state: webauthn_rs::prelude::DiscoverableAuthentication = from_value(&ceremony.state)?;
    let Ok(result) = webauthn.finish_discoverable_authentication(&credential, state, &keys) else { return Ok(None) };
    if !result.user_verified() {
        return Ok(None);
    }
    let mut stored = load(storage, &factors.user_id).await?;
    let hardware = passkey_used(&mut stored.factors, &result, now);
    stored.save(storage).await?;
    Ok(Some((factors.user_id, hardware)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_totp_code_is_accepted_once_within_its_window() {
        let secret = vec![7u8; 20];
        let now = 1_700_000_000i64;
        let code = totp(secret.clone(), "https://id.example.com", "erin").unwrap().generate(now as u64).to_string();
        let step = totp_step(secret.clone(), &code, now, None).unwrap().expect("the current code");
        assert_eq!(totp_step(secret.clone(), &code, now, Some(step)).unwrap(), None, "used once");
        assert_eq!(totp_step(secret.clone(), &code, now + 30, None).unwrap(), Some(step), "a step late");
        assert_eq!(totp_step(secret.clone(), &code, now + 95, None).unwrap(), None, "too late");
        assert_eq!(totp_step(secret, "12345", now, None).unwrap(), None);
    }

    #[test]
    fn the_demand_of_a_request() {
        let two = ["2".to_owned()];
        assert_eq!(demand(&[], None), Demand::None);
        assert_eq!(demand(&two, None), Demand::Voluntary);
        let essential = r#"{"id_token":{"acr":{"essential":true,"value":"2"}}}"#;
        assert_eq!(demand(&[], Some(essential)), Demand::Essential);
        let values = r#"{"userinfo":{"acr":{"essential":true,"values":["1","2"]}}}"#;
        assert_eq!(demand(&[], Some(values)), Demand::Essential);
        let voluntary = r#"{"id_token":{"acr":{"value":"2"}}}"#;
        assert_eq!(demand(&[], Some(voluntary)), Demand::None);
    }

    #[test]
    fn recovery_codes_are_bound_to_their_user_and_typed_loosely() {
        let (codes, hashed) = new_recovery_codes("u1");
        assert_eq!(codes.len(), limits::RECOVERY_CODES);
        assert_eq!(hashed[0].hash, recovery_hash("u1", &codes[0].to_uppercase().replace('-', " ")));
        assert_ne!(hashed[0].hash, recovery_hash("u2", &codes[0]));
    }
}
