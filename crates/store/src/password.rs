//! Password hashing: argon2id for everything new; imported salted-SHA256 and
//! MD5 hashes are accepted and replaced by argon2id at the next successful
//! login. Every comparison is constant-time.
//!
//! Importable formats:
//!
//! | format | value |
//! |---|---|
//! | `{SSHA256}b64` | base64 of SHA-256(password ‖ salt) ‖ salt (OpenLDAP, Dovecot) |
//! | `{SHA256}b64` | base64 of SHA-256(password) |
//! | 70 hex digits | hMailServer: 6-character salt, then hex SHA-256(salt ‖ password) |
//! | `{SMD5}b64` | base64 of MD5(password ‖ salt) ‖ salt |
//! | `{MD5}b64` | base64 of MD5(password) |
//! | 32 hex digits | hex MD5(password) (hMailServer's older format) |

use std::fmt;
use std::sync::{Condvar, LazyLock, Mutex};

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64ct::{Base64, Encoding};
use md5::Md5;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The argon2id cost parameters for new hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory in KiB (default 19 456, OWASP's recommendation).
    pub memory_kib: u32,
    /// Passes (default 2).
    pub iterations: u32,
    /// Lanes (default 1).
    pub parallelism: u32,
}

impl Default for PasswordParams {
    fn default() -> Self {
        PasswordParams {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl PasswordParams {
    /// The cheapest parameters argon2 allows: for tests only.
    pub fn insecure_fast() -> Self {
        PasswordParams {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        }
    }
}

/// A password as given to [`crate::Store::add_account`] or
/// [`crate::Store::set_password`]: clear text to hash, or a hash to import.
/// `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    /// Clear text; stored as argon2id.
    Plain(String),
    /// An existing hash in one of the importable formats (or argon2).
    Hash(String),
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Password::Plain(_) => f.write_str("Password::Plain(***)"),
            Password::Hash(_) => f.write_str("Password::Hash(***)"),
        }
    }
}

/// The outcome of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verified {
    pub(crate) ok: bool,
    /// The stored hash is a legacy format (or not argon2id) and should be replaced.
    pub(crate) upgrade: bool,
}

pub(crate) fn hasher(params: PasswordParams) -> Result<Argon2<'static>> {
    let p = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        None,
    )
    .map_err(|e| Error::Database(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, p))
}

/// A new argon2id PHC string for `password`.
pub(crate) fn hash(params: PasswordParams, password: &str) -> Result<String> {
    let hash = hasher(params)?
        .hash_password(password.as_bytes())
        .map_err(|e| Error::Database(format!("argon2: {e}")))?;
    Ok(hash.to_string())
}

/// The hash to store for `password`.
pub(crate) fn to_stored(params: PasswordParams, password: &Password) -> Result<String> {
    match password {
        Password::Plain(p) => hash(params, p),
        Password::Hash(h) => {
            if scheme(h).is_none() {
                return Err(Error::UnsupportedHash);
            }
            Ok(h.clone())
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Argon2 { id: bool },
    Ssha256,
    Sha256,
    HmsSha256,
    Smd5,
    Md5B64,
    Md5Hex,
}

fn scheme(stored: &str) -> Option<Scheme> {
    if stored.starts_with("$argon2") {
        return PasswordHash::new(stored).ok().map(|_| Scheme::Argon2 {
            id: stored.starts_with("$argon2id$"),
        });
    }
    let b64_len = |rest: &str, min: usize| Base64::decode_vec(rest).is_ok_and(|v| v.len() >= min);
    if let Some(rest) = stored.strip_prefix("{SSHA256}") {
        return b64_len(rest, 33).then_some(Scheme::Ssha256);
    }
    if let Some(rest) = stored.strip_prefix("{SHA256}") {
        return Base64::decode_vec(rest)
            .is_ok_and(|v| v.len() == 32)
            .then_some(Scheme::Sha256);
    }
    if let Some(rest) = stored.strip_prefix("{SMD5}") {
        return b64_len(rest, 17).then_some(Scheme::Smd5);
    }
    if let Some(rest) = stored.strip_prefix("{MD5}") {
        return Base64::decode_vec(rest)
            .is_ok_and(|v| v.len() == 16)
            .then_some(Scheme::Md5B64);
    }
    if stored.len() == 70 && decode_hex(&stored[6..]).is_some() && stored.is_char_boundary(6) {
        return Some(Scheme::HmsSha256);
    }
    if stored.len() == 32 && decode_hex(stored).is_some() {
        return Some(Scheme::Md5Hex);
    }
    None
}

/// Checks `password` against a stored hash of any supported format.
pub(crate) fn verify(stored: &str, password: &str) -> Verified {
    let pw = password.as_bytes();
    let no = Verified {
        ok: false,
        upgrade: false,
    };
    let Some(scheme) = scheme(stored) else {
        return no;
    };
    let ok = match scheme {
        Scheme::Argon2 { .. } => verify_argon2(stored, pw),
        Scheme::Ssha256 => salted::<Sha256>(&stored[9..], 32, pw),
        Scheme::Sha256 => salted::<Sha256>(&stored[8..], 32, pw),
        Scheme::Smd5 => salted::<Md5>(&stored[6..], 16, pw),
        Scheme::Md5B64 => salted::<Md5>(&stored[5..], 16, pw),
        Scheme::HmsSha256 => {
            let (salt, hex) = stored.split_at(6);
            let mut h = Sha256::new();
            h.update(salt.as_bytes());
            h.update(pw);
            decode_hex(hex).is_some_and(|want| ct_eq(&h.finalize(), &want))
        }
        Scheme::Md5Hex => decode_hex(stored).is_some_and(|want| ct_eq(&Md5::digest(pw), &want)),
    };
    Verified {
        ok,
        upgrade: ok && scheme != Scheme::Argon2 { id: true },
    }
}

/// Memory for argon2 verifications, reused. At most one buffer per CPU is
/// ever allocated, and at most that many verifications run at once (the
/// rest wait: hashing is CPU-bound anyway). Without it every login
/// allocated its own 19 MiB: a burst of logins on the server's blocking
/// threads could ask for gigabytes, and each thread's allocator kept its
/// copy afterwards.
struct Workspace {
    state: Mutex<(Vec<Vec<Block>>, usize)>,
    returned: Condvar,
    limit: usize,
}

static WORKSPACE: LazyLock<Workspace> = LazyLock::new(|| Workspace {
    state: Mutex::new((Vec::new(), 0)),
    returned: Condvar::new(),
    limit: std::thread::available_parallelism().map_or(2, |n| n.get()),
});

/// A buffer taken from the [`Workspace`]; given back when dropped.
struct Borrowed(Vec<Block>);

impl Workspace {
    fn take(&self) -> Borrowed {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(buffer) = state.0.pop() {
                return Borrowed(buffer);
            }
            if state.1 < self.limit {
                state.1 += 1;
                return Borrowed(Vec::new());
            }
            state = self.returned.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Drop for Borrowed {
    fn drop(&mut self) {
        let buffer = std::mem::take(&mut self.0);
        let mut state = WORKSPACE.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0.push(buffer);
        WORKSPACE.returned.notify_one();
    }
}

/// Checks an argon2 PHC string (any variant and version, its own cost
/// parameters) in memory from the [`Workspace`].
fn verify_argon2(stored: &str, pw: &[u8]) -> bool {
    let Ok(hash) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm.as_str()) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    let blocks = params.block_count();
    let mut memory = WORKSPACE.take();
    if memory.0.len() < blocks {
        memory.0.resize(blocks, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params);
    argon2
        .hash_password_into_with_memory(pw, salt.as_ref(), &mut out, &mut memory.0[..blocks])
        .is_ok()
        && ct_eq(&out, expected.as_ref())
}

/// `b64` is base64 of digest(password ‖ salt) ‖ salt, the salt possibly empty.
fn salted<D: Digest>(b64: &str, digest_len: usize, pw: &[u8]) -> bool {
    let Ok(raw) = Base64::decode_vec(b64) else {
        return false;
    };
    if raw.len() < digest_len {
        return false;
    }
    let (want, salt) = raw.split_at(digest_len);
    let mut h = D::new();
    h.update(pw);
    h.update(salt);
    ct_eq(&h.finalize(), want)
}

/// Compares without an early exit, so the time does not tell where bytes differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|p| {
            let t = std::str::from_utf8(p).ok()?;
            u8::from_str_radix(t, 16).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn argon2id_round_trip() {
        let h = hash(PasswordParams::insecure_fast(), "secret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert_eq!(
            verify(&h, "secret"),
            Verified {
                ok: true,
                upgrade: false
            }
        );
        assert!(!verify(&h, "Secret").ok);
    }

    #[test]
    fn many_verifications_at_once_share_the_workspace() {
        // 16 threads at once hold at most one buffer per CPU between them.
        let params = PasswordParams {
            memory_kib: 1024,
            ..PasswordParams::default()
        };
        let h = hash(params, "secret").unwrap();
        let i = PasswordHash::new(&h).unwrap();
        assert_eq!(i.algorithm.as_str(), "argon2id");
        let threads: Vec<_> = (0..16)
            .map(|n| {
                let h = h.clone();
                std::thread::spawn(move || {
                    verify(&h, if n % 2 == 0 { "secret" } else { "wrong" }).ok
                })
            })
            .collect();
        for (n, t) in threads.into_iter().enumerate() {
            assert_eq!(t.join().unwrap(), n % 2 == 0);
        }
        // Other tests of this process may hold a buffer right now, so only
        // the bound is checked, not that every buffer is back.
        let created = WORKSPACE.state.lock().unwrap().1;
        assert!(created <= WORKSPACE.limit, "{created} buffers");
    }

    /// A hash made by another argon2 implementation's parameters (argon2i,
    /// version 0x10, other costs) verifies the same way.
    #[test]
    fn other_argon2_variants_verify() {
        let params = Params::new(64, 3, 2, None).unwrap();
        let other = Argon2::new(Algorithm::Argon2i, Version::V0x10, params)
            .hash_password_with_salt(b"pw", b"saltsaltsalt")
            .unwrap()
            .to_string();
        assert!(verify(&other, "pw").ok);
        assert!(verify(&other, "pw").upgrade);
        assert!(!verify(&other, "px").ok);
    }

    #[test]
    fn imported_formats_verify_and_ask_for_upgrade() {
        let pw = "hunter2";
        let salt = b"NaCl";
        let mut ssha = Sha256::digest([pw.as_bytes(), salt].concat()).to_vec();
        ssha.extend_from_slice(salt);
        let mut smd5 = Md5::digest([pw.as_bytes(), salt].concat()).to_vec();
        smd5.extend_from_slice(salt);
        let hms = format!(
            "abc123{}",
            hex(&Sha256::digest(format!("abc123{pw}").as_bytes()))
        );
        let cases = [
            format!("{{SSHA256}}{}", Base64::encode_string(&ssha)),
            format!(
                "{{SHA256}}{}",
                Base64::encode_string(&Sha256::digest(pw.as_bytes()))
            ),
            format!("{{SMD5}}{}", Base64::encode_string(&smd5)),
            format!(
                "{{MD5}}{}",
                Base64::encode_string(&Md5::digest(pw.as_bytes()))
            ),
            hms,
            hex(&Md5::digest(pw.as_bytes())),
        ];
        for stored in cases {
            assert!(scheme(&stored).is_some(), "{stored}");
            assert_eq!(
                verify(&stored, pw),
                Verified {
                    ok: true,
                    upgrade: true
                },
                "{stored}"
            );
            assert!(!verify(&stored, "hunter3").ok, "{stored}");
        }
    }

    #[test]
    fn unknown_formats_are_refused() {
        assert!(matches!(
            to_stored(
                PasswordParams::insecure_fast(),
                &Password::Hash("plaintext".into())
            ),
            Err(Error::UnsupportedHash)
        ));
        assert!(!verify("plaintext", "plaintext").ok);
        assert_eq!(
            format!("{:?}", Password::Plain("x".into())),
            "Password::Plain(***)"
        );
    }
}
