//! RFC 8292 VAPID: ES256 JWTs and the `vapid t=…, k=…` Authorization value.
//!
//! Plain Rust, no Python. A [`Signer`] holds one site's key and a small cache
//! of tokens keyed by (audience, subject).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::agreement;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;

use crate::ece::{P256_POINT_LEN, SCALAR_LEN};
use crate::error::Error;

/// RFC 8292 §2: `exp` MUST NOT be more than 24 hours from the time of the request.
pub const MAX_EXPIRES_IN: i64 = 24 * 60 * 60;
pub const DEFAULT_EXPIRES_IN: i64 = 12 * 60 * 60;
/// A cached token is re-minted when fewer than `min(expires_in / 2, this)`
/// seconds of its lifetime are left.
pub const MAX_REFRESH_MARGIN: i64 = 10 * 60;
/// Bound on cached (audience, subject) pairs; beyond it, expired entries are dropped,
/// then the whole cache if still needed.
const CACHE_LIMIT: usize = 1024;

/// base64url('{"typ":"JWT","alg":"ES256"}')
const JWT_HEADER_B64: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9";

struct Cached {
    value: String,
    exp: i64,
}

pub struct Signer {
    key_pair: EcdsaKeyPair,
    public_key: [u8; P256_POINT_LEN],
    public_key_b64: String,
    cache: Mutex<HashMap<(String, String), Cached>>,
}

fn bad_key(reason: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::invalid("private_key", reason)
}

/// The DER inside the first PEM block labelled `PRIVATE KEY` (PKCS#8) or
/// `EC PRIVATE KEY` (SEC 1); other blocks such as `EC PARAMETERS` are skipped.
fn pem_to_der(pem: &[u8]) -> Result<Vec<u8>, Error> {
    let text = std::str::from_utf8(pem).map_err(|_| bad_key("PEM is not valid UTF-8"))?;
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let label_end = after
            .find("-----")
            .ok_or_else(|| bad_key("has a malformed PEM header"))?;
        let label = &after[..label_end];
        let body = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let end = body
            .find(&end_marker)
            .ok_or_else(|| bad_key(format!("PEM block {label:?} has no END line")))?;
        match label {
            "PRIVATE KEY" | "EC PRIVATE KEY" => {
                let b64: String = body[..end]
                    .chars()
                    .filter(|c| !c.is_ascii_whitespace())
                    .collect();
                return STANDARD
                    .decode(b64)
                    .map_err(|_| bad_key("PEM body is not valid base64"));
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err(bad_key("is an encrypted PEM key; decrypt it first"))
            }
            _ => rest = &body[end + end_marker.len()..],
        }
    }
    Err(bad_key(
        "PEM has no 'PRIVATE KEY' or 'EC PRIVATE KEY' block",
    ))
}

/// Minimal JSON string literal (RFC 8259 §7).
fn json_string(s: &str, out: &mut String) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `audience` must be an origin: `https://host[:port]` (or `http://` for local
/// test servers), without path, query or fragment.
pub fn check_audience(audience: &str) -> Result<(), Error> {
    let authority = audience
        .strip_prefix("https://")
        .or_else(|| audience.strip_prefix("http://"));
    let ok = match authority {
        Some(a) => {
            !a.is_empty()
                && !a.chars().any(|c| {
                    matches!(c, '/' | '?' | '#' | '@') || c.is_whitespace() || c.is_control()
                })
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "audience",
            format!(
                "must be the push service's origin such as 'https://fcm.googleapis.com' \
                 (scheme and host, no path), got {audience:?}"
            ),
        ))
    }
}

/// `subject` must be a `mailto:` or `https:` URI (Apple rejects anything else).
pub fn check_subject(subject: &str) -> Result<(), Error> {
    let rest = subject
        .strip_prefix("mailto:")
        .or_else(|| subject.strip_prefix("https:"));
    match rest {
        Some(r) if !r.is_empty() && !r.chars().any(char::is_control) => Ok(()),
        _ => Err(Error::invalid(
            "subject",
            format!(
                "must be a 'mailto:' or 'https:' URI (push services such as Apple's \
                 reject others), got {subject:?}"
            ),
        )),
    }
}

pub fn check_expires_in(expires_in: i64) -> Result<(), Error> {
    if (1..=MAX_EXPIRES_IN).contains(&expires_in) {
        Ok(())
    } else {
        Err(Error::invalid(
            "expires_in",
            format!(
                "must be between 1 and {MAX_EXPIRES_IN} seconds (RFC 8292: exp at most \
                 24 hours ahead), got {expires_in}"
            ),
        ))
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Signer {
    /// `private_key`: raw 32-byte big-endian scalar, PKCS#8 or SEC 1 DER, or PEM.
    pub fn new(private_key: &[u8]) -> Result<Self, Error> {
        let key_pair = if private_key.len() == SCALAR_LEN {
            let public =
                agreement::PrivateKey::from_private_key(&agreement::ECDH_P256, private_key)
                    .map_err(|_| bad_key("is not a valid P-256 scalar (need 0 < k < n)"))?
                    .compute_public_key()?;
            EcdsaKeyPair::from_private_key_and_public_key(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                private_key,
                public.as_ref(),
            )
            .map_err(|_| bad_key("is not a valid P-256 scalar (need 0 < k < n)"))?
        } else {
            let trimmed = private_key.trim_ascii_start();
            let der;
            let der_ref = if trimmed.starts_with(b"-----BEGIN ") {
                der = pem_to_der(trimmed)?;
                der.as_slice()
            } else {
                private_key
            };
            EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, der_ref).map_err(
                |e| {
                    bad_key(format!(
                        "must be a raw 32-byte P-256 scalar, or a P-256 key in PKCS#8 / SEC 1 \
                         DER or PEM ({e}; got {} bytes)",
                        private_key.len()
                    ))
                },
            )?
        };
        let public_key: [u8; P256_POINT_LEN] = key_pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| Error::Crypto("unexpected public key encoding"))?;
        Ok(Signer {
            key_pair,
            public_key,
            public_key_b64: URL_SAFE_NO_PAD.encode(public_key),
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub fn public_key(&self) -> &[u8; P256_POINT_LEN] {
        &self.public_key
    }

    /// A fresh signed JWT: `{"aud":…,"exp":…,"sub":…}`.
    pub fn token(&self, audience: &str, subject: &str, exp: i64) -> Result<String, Error> {
        let mut claims = String::with_capacity(64 + audience.len() + subject.len());
        claims.push_str("{\"aud\":");
        json_string(audience, &mut claims);
        claims.push_str(",\"exp\":");
        claims.push_str(&exp.to_string());
        claims.push_str(",\"sub\":");
        json_string(subject, &mut claims);
        claims.push('}');

        let mut jwt = String::with_capacity(256);
        jwt.push_str(JWT_HEADER_B64);
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(claims.as_bytes(), &mut jwt);
        let signature = self.key_pair.sign(&SystemRandom::new(), jwt.as_bytes())?;
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut jwt);
        Ok(jwt)
    }

    /// `vapid t=<jwt>, k=<public key>` for `audience`, reusing the cached token
    /// of (audience, subject) while it expires no later than `now + expires_in`
    /// and more than `min(expires_in / 2, 10 min)` after `now`.
    pub fn authorization_at(
        &self,
        audience: &str,
        subject: &str,
        expires_in: i64,
        now: f64,
    ) -> Result<String, Error> {
        check_audience(audience)?;
        check_subject(subject)?;
        check_expires_in(expires_in)?;
        let margin = (expires_in / 2).min(MAX_REFRESH_MARGIN) as f64;
        let latest_exp = now.floor() as i64 + expires_in;
        let key = (audience.to_owned(), subject.to_owned());
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = cache.get(&key) {
                if c.exp <= latest_exp && c.exp as f64 - now > margin {
                    return Ok(c.value.clone());
                }
            }
        }
        let jwt = self.token(audience, subject, latest_exp)?;
        let value = format!("vapid t={jwt}, k={}", self.public_key_b64);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_LIMIT && !cache.contains_key(&key) {
            cache.retain(|_, c| c.exp as f64 > now);
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Cached {
                value: value.clone(),
                exp: latest_exp,
            },
        );
        Ok(value)
    }

    pub fn authorization(
        &self,
        audience: &str,
        subject: &str,
        expires_in: i64,
    ) -> Result<String, Error> {
        self.authorization_at(audience, subject, expires_in, unix_now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

    const AUD: &str = "https://fcm.googleapis.com";
    const SUB: &str = "mailto:ops@example.com";

    fn raw_key() -> Vec<u8> {
        // Any valid scalar; here RFC 8291's application-server key.
        crate::ece::tests::b64(crate::ece::tests::AS_PRIVATE)
    }

    fn parse(value: &str) -> (String, String, serde_like::Claims, Vec<u8>) {
        let rest = value.strip_prefix("vapid t=").unwrap();
        let (jwt, k) = rest.split_once(", k=").unwrap();
        let mut parts = jwt.split('.');
        let (h, c, s) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        assert!(parts.next().is_none());
        assert_eq!(
            URL_SAFE_NO_PAD.decode(h).unwrap(),
            br#"{"typ":"JWT","alg":"ES256"}"#
        );
        let claims = String::from_utf8(URL_SAFE_NO_PAD.decode(c).unwrap()).unwrap();
        let sig = URL_SAFE_NO_PAD.decode(s).unwrap();
        assert_eq!(sig.len(), 64);
        let pk = URL_SAFE_NO_PAD.decode(k).unwrap();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &pk)
            .verify(format!("{h}.{c}").as_bytes(), &sig)
            .expect("signature verifies");
        (jwt.to_owned(), k.to_owned(), serde_like::parse(&claims), pk)
    }

    /// Just enough to read back the three claims we write.
    mod serde_like {
        #[derive(Debug, PartialEq)]
        pub struct Claims {
            pub aud: String,
            pub exp: i64,
            pub sub: String,
        }
        pub fn parse(json: &str) -> Claims {
            let inner = json.strip_prefix("{\"aud\":\"").unwrap();
            let (aud, rest) = inner.split_once("\",\"exp\":").unwrap();
            let (exp, rest) = rest.split_once(",\"sub\":\"").unwrap();
            let sub = rest.strip_suffix("\"}").unwrap();
            Claims {
                aud: aud.to_owned(),
                exp: exp.parse().unwrap(),
                sub: sub.to_owned(),
            }
        }
    }

    #[test]
    fn token_verifies_with_asked_claims() {
        let signer = Signer::new(&raw_key()).unwrap();
        assert_eq!(
            signer.public_key().as_slice(),
            crate::ece::tests::b64(crate::ece::tests::AS_PUBLIC)
        );
        let now = 1_800_000_000.25;
        let value = signer.authorization_at(AUD, SUB, 3600, now).unwrap();
        let (_, k, claims, pk) = parse(&value);
        assert_eq!(pk, signer.public_key());
        assert_eq!(k, URL_SAFE_NO_PAD.encode(signer.public_key()));
        assert_eq!(
            claims,
            serde_like::Claims {
                aud: AUD.into(),
                exp: 1_800_003_600,
                sub: SUB.into()
            }
        );
    }

    #[test]
    fn token_is_reused_until_near_expiry() {
        let signer = Signer::new(&raw_key()).unwrap();
        let t0 = 1_800_000_000.0;
        let a = signer.authorization_at(AUD, SUB, 43200, t0).unwrap();
        // ECDSA signatures are randomized: equal strings mean the token was reused.
        assert_eq!(
            a,
            signer.authorization_at(AUD, SUB, 43200, t0 + 1.0).unwrap()
        );
        assert_eq!(
            a,
            signer
                .authorization_at(AUD, SUB, 43200, t0 + 43200.0 - 601.0)
                .unwrap()
        );
        let b = signer
            .authorization_at(AUD, SUB, 43200, t0 + 43200.0 - 599.0)
            .unwrap();
        assert_ne!(a, b);
        // Another subject or audience gets its own token.
        let c = signer
            .authorization_at(AUD, "mailto:other@example.com", 43200, t0)
            .unwrap();
        assert_ne!(a, c);
        let d = signer
            .authorization_at("https://web.push.apple.com", SUB, 43200, t0)
            .unwrap();
        assert_ne!(a, d);
        // A shorter lifetime than the cached token's is never exceeded.
        let e = signer
            .authorization_at(AUD, SUB, 60, t0 + 43200.0 - 599.0)
            .unwrap();
        assert_ne!(b, e);
        assert_eq!(parse(&e).2.exp, (t0 + 43200.0 - 599.0) as i64 + 60);
    }

    #[test]
    fn key_formats() {
        let raw = raw_key();
        let from_raw = Signer::new(&raw).unwrap();
        let kp = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &raw,
            from_raw.public_key(),
        )
        .unwrap();
        let pkcs8 = kp.to_pkcs8v1().unwrap();
        let from_der = Signer::new(pkcs8.as_ref()).unwrap();
        assert_eq!(from_der.public_key(), from_raw.public_key());
        let pem = format!(
            "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n\
             -----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(pkcs8.as_ref())
        );
        let from_pem = Signer::new(pem.as_bytes()).unwrap();
        assert_eq!(from_pem.public_key(), from_raw.public_key());

        for bad in [
            &[0u8; 32][..],
            &[0xffu8; 32][..],
            &[1u8; 31][..],
            b"-----BEGIN PRIVATE KEY-----\n",
        ] {
            let e = Signer::new(bad).err().unwrap().to_string();
            assert!(e.starts_with("private_key "), "{e}");
        }
    }

    #[test]
    fn refusals() {
        let signer = Signer::new(&raw_key()).unwrap();
        let now = 1_800_000_000.0;
        for sub in [
            "ops@example.com",
            "http://example.com",
            "mailto:",
            "MAILTO:x@y",
        ] {
            let e = signer.authorization_at(AUD, sub, 60, now).unwrap_err();
            assert!(e.to_string().starts_with("subject must be"), "{e}");
        }
        assert!(signer
            .authorization_at(AUD, "https://example.com/contact", 60, now)
            .is_ok());
        for aud in [
            "fcm.googleapis.com",
            "https://fcm.googleapis.com/fcm/send/x",
            "https://",
            "ftp://x",
        ] {
            let e = signer.authorization_at(aud, SUB, 60, now).unwrap_err();
            assert!(e.to_string().starts_with("audience must be"), "{e}");
        }
        for exp in [0, -5, MAX_EXPIRES_IN + 1] {
            let e = signer.authorization_at(AUD, SUB, exp, now).unwrap_err();
            assert!(e.to_string().starts_with("expires_in must be"), "{e}");
        }
        let (_, _, claims, _) = parse(
            &signer
                .authorization_at(AUD, SUB, MAX_EXPIRES_IN, now)
                .unwrap(),
        );
        assert_eq!(claims.exp, now as i64 + MAX_EXPIRES_IN);
    }

    #[test]
    fn json_escaping() {
        let mut s = String::new();
        json_string("a\"b\\c\u{1}é", &mut s);
        assert_eq!(s, "\"a\\\"b\\\\c\\u0001é\"");
    }
}
