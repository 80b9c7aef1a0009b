//! RFC 8291 (Message Encryption for Web Push) over RFC 8188 `aes128gcm`.
//!
//! Plain Rust, no Python: the PyO3 layer in `lib.rs` only converts arguments.
//!
//! Per message: one fresh P-256 key pair (fixed-base multiplication), one ECDH
//! (variable-base multiplication, which also validates the subscriber's point),
//! five HMAC-SHA-256 (HKDF, RFC 8291 §3.3/§3.4 and RFC 8188 §2.2/§2.3), and one
//! AES-128-GCM record. Everything is done by AWS-LC through `aws-lc-rs`.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use aws_lc_rs::rand;

use crate::error::Error;
use crate::hmac_sha256::HmacSha256;
use crate::p256::{wipe, KeyPair, P256Error, PublicPoint};

/// Length of the RFC 8188 header written by [`encrypt`]:
/// salt (16) ‖ rs (4) ‖ idlen (1) ‖ keyid = sender public key (65).
pub const HEADER_LEN: usize = 16 + 4 + 1 + P256_POINT_LEN;
/// Bytes a single-record body adds to the payload: header, the 0x02
/// last-record delimiter and the 16-byte GCM tag.
pub const OVERHEAD: usize = HEADER_LEN + 1 + TAG_LEN;
/// Default `record_size`: a 4096-byte body, the size every push service accepts.
pub const DEFAULT_RECORD_SIZE: u32 = 4096;
/// Smallest `record_size` for which even an empty payload fits.
pub const MIN_RECORD_SIZE: u32 = OVERHEAD as u32;

pub const P256_POINT_LEN: usize = 65;
pub const AUTH_LEN: usize = 16;
pub const SALT_LEN: usize = 16;
pub const SCALAR_LEN: usize = 32;
const TAG_LEN: usize = 16;

const KEY_INFO_PREFIX: &[u8] = b"WebPush: info\0";
const CEK_INFO: &[u8] = b"Content-Encoding: aes128gcm\0\x01";
const NONCE_INFO: &[u8] = b"Content-Encoding: nonce\0\x01";

/// Checks `record_size` and returns it as the header's 32-bit `rs`.
pub fn check_record_size(record_size: i64) -> Result<u32, Error> {
    match u32::try_from(record_size) {
        Ok(rs) if rs >= MIN_RECORD_SIZE => Ok(rs),
        _ => Err(Error::invalid(
            "record_size",
            format!(
                "must be between {MIN_RECORD_SIZE} and {} (a body of that many bytes), got {record_size}",
                u32::MAX
            ),
        )),
    }
}

/// Largest payload that fits one record of a `record_size`-byte body.
pub fn max_payload(record_size: u32) -> usize {
    record_size as usize - OVERHEAD
}

pub fn check_payload(payload: &[u8], record_size: u32) -> Result<(), Error> {
    let max = max_payload(record_size);
    if payload.len() > max {
        return Err(Error::invalid(
            "payload",
            format!(
                "is {} bytes, larger than record_size - {OVERHEAD} = {max} bytes",
                payload.len()
            ),
        ));
    }
    Ok(())
}

/// Length and form of the subscriber's key; that it is on the curve is checked
/// by the ECDH itself.
pub fn check_p256dh(p256dh: &[u8]) -> Result<&[u8; P256_POINT_LEN], Error> {
    let point: &[u8; P256_POINT_LEN] = p256dh.try_into().map_err(|_| {
        Error::invalid(
            "p256dh",
            format!(
                "must be a 65-byte uncompressed P-256 point, got {} bytes",
                p256dh.len()
            ),
        )
    })?;
    if point[0] != 0x04 {
        return Err(Error::invalid(
            "p256dh",
            format!(
                "must be an uncompressed P-256 point (first byte 0x04), got first byte 0x{:02x}",
                point[0]
            ),
        ));
    }
    Ok(point)
}

pub fn check_auth(auth: &[u8]) -> Result<&[u8; AUTH_LEN], Error> {
    auth.try_into().map_err(|_| {
        Error::invalid(
            "auth",
            format!("must be 16 bytes, got {} bytes", auth.len()),
        )
    })
}

/// The subscriber's point, validated (on the curve, coordinates < p).
fn subscriber_point(ua_public: &[u8; P256_POINT_LEN]) -> Result<PublicPoint, Error> {
    PublicPoint::parse(ua_public).map_err(|e| match e {
        P256Error::Internal => Error::Crypto("cannot allocate an EC point"),
        _ => Error::invalid("p256dh", "is not a point on P-256"),
    })
}

/// The sender's key pair: fresh, or imported (only to reproduce known vectors).
fn sender_key(sender_private_key: Option<&[u8]>) -> Result<KeyPair, Error> {
    let key = match sender_private_key {
        None => KeyPair::generate(),
        Some(raw) => {
            let raw: &[u8; SCALAR_LEN] = raw.try_into().map_err(|_| {
                Error::invalid(
                    "sender_private_key",
                    format!("must be a 32-byte P-256 scalar, got {} bytes", raw.len()),
                )
            })?;
            KeyPair::from_scalar(raw)
        }
    };
    key.map_err(|e| match e {
        P256Error::InvalidScalar => Error::invalid(
            "sender_private_key",
            "is not a valid P-256 private key (need 0 < k < n)",
        ),
        _ => Error::Crypto("P-256 key generation failed"),
    })
}

/// Content-encryption key and nonce (RFC 8291 §3.3–3.4, RFC 8188 §2.2–2.3).
///
/// Every HKDF-Expand here needs a single block, `HMAC(PRK, info ‖ 0x01)`, so
/// the chain is five HMACs; the info strings are passed in parts, never built.
fn derive(
    ecdh_secret: &[u8],
    auth: &[u8; AUTH_LEN],
    ua_public: &[u8; P256_POINT_LEN],
    as_public: &[u8; P256_POINT_LEN],
    salt: &[u8; SALT_LEN],
) -> Result<([u8; 16], [u8; 12]), Error> {
    let mut mac = HmacSha256::new();
    // PRK_key = HKDF-Extract(salt=auth_secret, IKM=ecdh_secret)
    let mut prk_key = mac.tag(auth, &[ecdh_secret])?;
    // IKM = HKDF-Expand(PRK_key, "WebPush: info" ‖ 0x00 ‖ ua_public ‖ as_public, 32)
    let mut ikm = mac.tag(&prk_key, &[KEY_INFO_PREFIX, ua_public, as_public, &[0x01]])?;
    // PRK = HKDF-Extract(salt, IKM)
    let mut prk = mac.tag(salt, &[&ikm])?;
    // CEK = HKDF-Expand(PRK, "Content-Encoding: aes128gcm" ‖ 0x00, 16)
    let mut cek_block = mac.tag(&prk, &[CEK_INFO])?;
    // NONCE = HKDF-Expand(PRK, "Content-Encoding: nonce" ‖ 0x00, 12), same key
    let nonce_block = mac.tag_same_key(&[NONCE_INFO])?;
    let mut cek = [0u8; 16];
    cek.copy_from_slice(&cek_block[..16]);
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&nonce_block[..12]);
    for secret in [&mut prk_key, &mut ikm, &mut prk, &mut cek_block] {
        wipe(secret);
    }
    Ok((cek, nonce))
}

/// Length of the body [`encrypt`] produces for a payload of `payload_len` bytes.
pub const fn body_len(payload_len: usize) -> usize {
    payload_len + OVERHEAD
}

/// Encrypts `payload` for one subscriber and returns the whole `aes128gcm`
/// body: salt ‖ rs ‖ idlen ‖ keyid ‖ one record (payload ‖ 0x02, sealed).
///
/// `salt` and `sender_private_key` are only for reproducing known vectors;
/// `None` (the normal case) draws both fresh from AWS-LC's CSPRNG.
pub fn encrypt(
    payload: &[u8],
    p256dh: &[u8],
    auth: &[u8],
    record_size: u32,
    salt: Option<&[u8]>,
    sender_private_key: Option<&[u8]>,
) -> Result<Vec<u8>, Error> {
    let mut body = vec![0u8; body_len(payload.len())];
    encrypt_into(
        &mut body,
        payload,
        p256dh,
        auth,
        record_size,
        salt,
        sender_private_key,
    )?;
    Ok(body)
}

/// [`encrypt`] writing into `out`, which must be exactly
/// [`body_len`]`(payload.len())` bytes (the Python layer passes the buffer of
/// the `bytes` object it returns, so a body is never copied).
pub fn encrypt_into(
    out: &mut [u8],
    payload: &[u8],
    p256dh: &[u8],
    auth: &[u8],
    record_size: u32,
    salt: Option<&[u8]>,
    sender_private_key: Option<&[u8]>,
) -> Result<(), Error> {
    let ua_public = check_p256dh(p256dh)?;
    let auth = check_auth(auth)?;
    check_payload(payload, record_size)?;
    if out.len() != body_len(payload.len()) {
        return Err(Error::Crypto("output buffer has the wrong size"));
    }
    let salt: [u8; SALT_LEN] = match salt {
        Some(s) => s.try_into().map_err(|_| {
            Error::invalid("salt", format!("must be 16 bytes, got {} bytes", s.len()))
        })?,
        None => {
            let mut s = [0u8; SALT_LEN];
            rand::fill(&mut s)?;
            s
        }
    };
    let peer = subscriber_point(ua_public)?;
    let sender = sender_key(sender_private_key)?;
    let as_public = sender
        .public_key()
        .map_err(|_| Error::Crypto("cannot encode the sender's public key"))?;
    let mut secret = sender
        .agree(&peer)
        .map_err(|_| Error::Crypto("ECDH failed"))?;
    let derived = derive(&secret, auth, ua_public, &as_public, &salt);
    wipe(&mut secret);
    let (mut cek, nonce) = derived?;
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &cek)?);
    wipe(&mut cek);

    let (header, rest) = out.split_at_mut(HEADER_LEN);
    header[..16].copy_from_slice(&salt);
    header[16..20].copy_from_slice(&record_size.to_be_bytes());
    header[20] = P256_POINT_LEN as u8;
    header[21..].copy_from_slice(&as_public);
    let (record, tag_out) = rest.split_at_mut(payload.len() + 1);
    record[..payload.len()].copy_from_slice(payload);
    record[payload.len()] = 0x02; // last-record delimiter, no padding
    let tag =
        key.seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), record)?;
    tag_out.copy_from_slice(tag.as_ref());
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, ECDH_P256};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    pub fn b64(s: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(s).unwrap()
    }

    // RFC 8291 Appendix A.
    pub const PLAINTEXT: &[u8] = b"When I grow up, I want to be a watermelon";
    pub const AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
    pub const AS_PUBLIC: &str =
        "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    pub const UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
    pub const UA_PUBLIC: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    pub const SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
    pub const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    pub const BODY: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";

    fn rfc_body() -> Vec<u8> {
        encrypt(
            PLAINTEXT,
            &b64(UA_PUBLIC),
            &b64(AUTH),
            4096,
            Some(&b64(SALT)),
            Some(&b64(AS_PRIVATE)),
        )
        .unwrap()
    }

    /// A user agent's side of RFC 8291 (used to read what `encrypt` wrote).
    pub fn decrypt(body: &[u8], ua_private: &PrivateKey, auth: &[u8]) -> Vec<u8> {
        let salt: &[u8; 16] = body[..16].try_into().unwrap();
        let rs = u32::from_be_bytes(body[16..20].try_into().unwrap());
        assert_eq!(body[20], 65);
        let as_public: &[u8; 65] = body[21..86].try_into().unwrap();
        let ua_public = ua_private.compute_public_key().unwrap();
        let ua_public: &[u8; 65] = ua_public.as_ref().try_into().unwrap();
        let auth: &[u8; 16] = auth.try_into().unwrap();
        let (cek, nonce) = agreement::agree(
            ua_private,
            UnparsedPublicKey::new(&ECDH_P256, as_public),
            (),
            |s| derive(s, auth, ua_public, as_public, salt).map_err(|_| ()),
        )
        .unwrap();
        let mut record = body[86..].to_vec();
        assert!(record.len() <= rs as usize);
        let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &cek).unwrap());
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut record,
            )
            .unwrap();
        assert_eq!(plain.last(), Some(&2));
        plain[..plain.len() - 1].to_vec()
    }

    #[test]
    fn rfc8291_appendix_a_body() {
        let body = rfc_body();
        assert_eq!(body.len(), 144);
        assert_eq!(body, b64(BODY));
        assert_eq!(&body[21..86], b64(AS_PUBLIC).as_slice());
    }

    #[test]
    fn rfc8291_appendix_a_decrypts() {
        let ua = PrivateKey::from_private_key(&ECDH_P256, &b64(UA_PRIVATE)).unwrap();
        assert_eq!(ua.compute_public_key().unwrap().as_ref(), b64(UA_PUBLIC));
        assert_eq!(decrypt(&b64(BODY), &ua, &b64(AUTH)), PLAINTEXT);
    }

    #[test]
    fn fresh_key_and_salt_round_trip() {
        let ua = PrivateKey::generate(&ECDH_P256).unwrap();
        let ua_public = ua.compute_public_key().unwrap();
        let auth = [7u8; 16];
        for len in [0usize, 1, 15, 16, 17, 2048, 3992, 3993] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let a = encrypt(&payload, ua_public.as_ref(), &auth, 4096, None, None).unwrap();
            let b = encrypt(&payload, ua_public.as_ref(), &auth, 4096, None, None).unwrap();
            assert_eq!(a.len(), len + OVERHEAD);
            assert_ne!(a[..16], b[..16], "salt must be fresh");
            assert_ne!(a[21..86], b[21..86], "sender key must be fresh");
            assert_eq!(decrypt(&a, &ua, &auth), payload);
            assert_eq!(decrypt(&b, &ua, &auth), payload);
        }
    }

    #[test]
    fn size_limit_is_record_size_minus_103() {
        let p256dh = b64(UA_PUBLIC);
        let auth = b64(AUTH);
        let body = encrypt(&[b'x'; 3993], &p256dh, &auth, 4096, None, None).unwrap();
        assert_eq!(body.len(), 4096);
        let err = encrypt(&[b'x'; 3994], &p256dh, &auth, 4096, None, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "payload is 3994 bytes, larger than record_size - 103 = 3993 bytes"
        );
        assert!(encrypt(b"", &p256dh, &auth, 103, None, None).is_ok());
        assert!(encrypt(b"x", &p256dh, &auth, 103, None, None).is_err());
        assert_eq!(check_record_size(4096), Ok(4096));
        assert!(check_record_size(102).is_err());
        assert!(check_record_size(-1).is_err());
        assert!(check_record_size(1 << 32).is_err());
    }

    #[test]
    fn encrypt_into_needs_an_exact_buffer() {
        let p256dh = b64(UA_PUBLIC);
        let auth = b64(AUTH);
        for len in [body_len(5) - 1, body_len(5) + 1] {
            let mut out = vec![0u8; len];
            let e = encrypt_into(&mut out, b"hello", &p256dh, &auth, 4096, None, None);
            assert!(matches!(e, Err(Error::Crypto(_))));
        }
        let mut out = vec![0u8; body_len(5)];
        encrypt_into(&mut out, b"hello", &p256dh, &auth, 4096, None, None).unwrap();
        let ua = PrivateKey::from_private_key(&ECDH_P256, &b64(UA_PRIVATE)).unwrap();
        assert_eq!(decrypt(&out, &ua, &auth), b"hello");
    }

    #[test]
    fn bad_arguments_name_the_argument() {
        let p256dh = b64(UA_PUBLIC);
        let auth = b64(AUTH);
        let err = |r: Result<Vec<u8>, Error>| r.unwrap_err().to_string();

        let e = err(encrypt(b"x", &p256dh[..64], &auth, 4096, None, None));
        assert!(e.starts_with("p256dh must be a 65-byte"), "{e}");
        let mut compressed = p256dh.clone();
        compressed[0] = 0x02;
        let e = err(encrypt(b"x", &compressed, &auth, 4096, None, None));
        assert!(e.starts_with("p256dh must be an uncompressed"), "{e}");
        let mut off = p256dh.clone();
        off[64] ^= 1;
        let e = err(encrypt(b"x", &off, &auth, 4096, None, None));
        assert_eq!(e, "p256dh is not a point on P-256");
        let e = err(encrypt(b"x", &p256dh, &auth[..15], 4096, None, None));
        assert_eq!(e, "auth must be 16 bytes, got 15 bytes");
        let e = err(encrypt(b"x", &p256dh, &auth, 4096, Some(&[0; 15]), None));
        assert_eq!(e, "salt must be 16 bytes, got 15 bytes");
        let e = err(encrypt(b"x", &p256dh, &auth, 4096, None, Some(&[1; 31])));
        assert!(e.starts_with("sender_private_key must be a 32-byte"), "{e}");
        let e = err(encrypt(b"x", &p256dh, &auth, 4096, None, Some(&[0; 32])));
        assert!(e.starts_with("sender_private_key is not a valid"), "{e}");
        let e = err(encrypt(b"x", &p256dh, &auth, 4096, None, Some(&[0xff; 32])));
        assert!(e.starts_with("sender_private_key is not a valid"), "{e}");
    }
}
