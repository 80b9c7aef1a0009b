//! P-256 key generation and ECDH on AWS-LC's `EC_KEY`/`EC_POINT` API (via `aws-lc-sys`).
//!
//! The arithmetic is AWS-LC's, the same code `aws-lc-rs`'s `agreement` module
//! ends up in: the `ecp_nistz256` assembly (ADX/BMI2, AVX2 table selection) for
//! k·G and s2n-bignum's formally verified `p256_montjscalarmul` (ADX/BMI2) for
//! k·P, both constant-time. Calling it directly skips the `EVP_PKEY` layer
//! (a few allocations, an `EVP_PKEY_CTX` per operation, a failed
//! SubjectPublicKeyInfo parse of the peer's raw point) and the re-validation
//! of a point [`PublicPoint::parse`] already validated: together about 2 µs
//! of the ~63 µs a message costs (see docs/performance.md). HMAC, AES-GCM, the
//! RNG and ECDSA stay on the safe `aws-lc-rs` API (HMAC partly, see
//! `hmac_sha256.rs`).
//!
//! Every pointer is owned by a small RAII wrapper.

use std::ptr::{self, NonNull};

use aws_lc_sys as sys;

use crate::ece::{P256_POINT_LEN, SCALAR_LEN};

/// Why a P-256 operation failed (callers turn this into an argument error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum P256Error {
    /// The scalar is 0 or not below the group order.
    InvalidScalar,
    /// The encoding is not an uncompressed point on the curve.
    InvalidPoint,
    /// AWS-LC failed for another reason (allocation).
    Internal,
}

fn fail<T>(e: P256Error) -> Result<T, P256Error> {
    // Do not leave entries in AWS-LC's thread-local error queue.
    unsafe { sys::ERR_clear_error() };
    Err(e)
}

fn group() -> *const sys::EC_GROUP {
    // A static, immutable group: no allocation, safe to share between threads.
    unsafe { sys::EC_group_p256() }
}

/// An owned `EC_KEY` on P-256 holding a private scalar and its public point.
pub struct KeyPair(NonNull<sys::EC_KEY>);

// SAFETY: the EC_KEY is exclusively owned; AWS-LC's EC_KEY may be used from any
// thread as long as it is not mutated concurrently (only `&self` methods that
// call const functions exist after construction).
unsafe impl Send for KeyPair {}
unsafe impl Sync for KeyPair {}

impl Drop for KeyPair {
    fn drop(&mut self) {
        // Frees (and cleanses) the private scalar.
        unsafe { sys::EC_KEY_free(self.0.as_ptr()) }
    }
}

impl KeyPair {
    fn empty() -> Result<Self, P256Error> {
        let key = NonNull::new(unsafe { sys::EC_KEY_new() }).ok_or(P256Error::Internal)?;
        let key = KeyPair(key);
        if unsafe { sys::EC_KEY_set_group(key.0.as_ptr(), group()) } != 1 {
            return fail(P256Error::Internal);
        }
        Ok(key)
    }

    /// A fresh key pair from AWS-LC's CSPRNG (rejection-sampled scalar, k·G).
    pub fn generate() -> Result<Self, P256Error> {
        let key = Self::empty()?;
        if unsafe { sys::EC_KEY_generate_key(key.0.as_ptr()) } != 1 {
            return fail(P256Error::Internal);
        }
        Ok(key)
    }

    /// The key pair of a given big-endian scalar (for reproducing known vectors).
    pub fn from_scalar(scalar: &[u8; SCALAR_LEN]) -> Result<Self, P256Error> {
        struct Bn(NonNull<sys::BIGNUM>);
        impl Drop for Bn {
            fn drop(&mut self) {
                unsafe { sys::BN_clear_free(self.0.as_ptr()) }
            }
        }
        let key = Self::empty()?;
        let bn =
            NonNull::new(unsafe { sys::BN_bin2bn(scalar.as_ptr(), SCALAR_LEN, ptr::null_mut()) })
                .map(Bn)
                .ok_or(P256Error::Internal)?;
        // Refuses 0 and values >= n.
        if unsafe { sys::EC_KEY_set_private_key(key.0.as_ptr(), bn.0.as_ptr()) } != 1 {
            return fail(P256Error::InvalidScalar);
        }
        let public = Point::new()?;
        let ok = unsafe {
            sys::EC_POINT_mul(
                group(),
                public.0.as_ptr(),
                bn.0.as_ptr(),
                ptr::null(),
                ptr::null(),
                ptr::null_mut(),
            ) == 1
                && sys::EC_KEY_set_public_key(key.0.as_ptr(), public.0.as_ptr()) == 1
        };
        if !ok {
            return fail(P256Error::Internal);
        }
        Ok(key)
    }

    /// The public point, uncompressed (0x04 ‖ X ‖ Y).
    pub fn public_key(&self) -> Result<[u8; P256_POINT_LEN], P256Error> {
        let mut out = [0u8; P256_POINT_LEN];
        let written = unsafe {
            let point = sys::EC_KEY_get0_public_key(self.0.as_ptr());
            if point.is_null() {
                return fail(P256Error::Internal);
            }
            sys::EC_POINT_point2oct(
                group(),
                point,
                sys::point_conversion_form_t::POINT_CONVERSION_UNCOMPRESSED,
                out.as_mut_ptr(),
                out.len(),
                ptr::null_mut(),
            )
        };
        if written != P256_POINT_LEN {
            return fail(P256Error::Internal);
        }
        Ok(out)
    }

    /// ECDH: the X coordinate of k·P (32 bytes, big-endian).
    ///
    /// This is what `ECDH_compute_key` does (constant-time k·P, which AWS-LC
    /// checks is on the curve, then the affine X), minus its re-validation of
    /// `peer`, which [`PublicPoint::parse`] already did: 1.5 µs less.
    pub fn agree(&self, peer: &PublicPoint) -> Result<[u8; 32], P256Error> {
        let product = Point::new()?;
        let mut encoded = [0u8; P256_POINT_LEN];
        let ok = unsafe {
            let scalar = sys::EC_KEY_get0_private_key(self.0.as_ptr());
            !scalar.is_null()
                && sys::EC_POINT_mul(
                    group(),
                    product.0.as_ptr(),
                    ptr::null(),
                    peer.0 .0.as_ptr(),
                    scalar,
                    ptr::null_mut(),
                ) == 1
                && sys::EC_POINT_point2oct(
                    group(),
                    product.0.as_ptr(),
                    sys::point_conversion_form_t::POINT_CONVERSION_UNCOMPRESSED,
                    encoded.as_mut_ptr(),
                    encoded.len(),
                    ptr::null_mut(),
                ) == P256_POINT_LEN
        };
        if !ok {
            return fail(P256Error::Internal);
        }
        let mut secret = [0u8; 32];
        secret.copy_from_slice(&encoded[1..33]);
        wipe(&mut encoded);
        Ok(secret)
    }
}

/// Overwrites secret bytes in a way the optimizer keeps.
pub fn wipe(bytes: &mut [u8]) {
    for b in bytes.iter_mut() {
        // SAFETY: `b` is a valid, exclusive reference.
        unsafe { ptr::write_volatile(b, 0) };
    }
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

/// An owned `EC_POINT` on P-256 (freed, and cleansed, by AWS-LC on drop).
struct Point(NonNull<sys::EC_POINT>);

impl Point {
    fn new() -> Result<Self, P256Error> {
        NonNull::new(unsafe { sys::EC_POINT_new(group()) })
            .map(Point)
            .ok_or(P256Error::Internal)
    }
}

impl Drop for Point {
    fn drop(&mut self) {
        unsafe { sys::EC_POINT_free(self.0.as_ptr()) }
    }
}

/// A validated point on P-256 (someone else's public key).
pub struct PublicPoint(Point);

// SAFETY: exclusively owned, never mutated after `parse`.
unsafe impl Send for PublicPoint {}
unsafe impl Sync for PublicPoint {}

impl PublicPoint {
    /// Parses an uncompressed point; fails unless it is on the curve (and its
    /// coordinates are below p).
    pub fn parse(uncompressed: &[u8; P256_POINT_LEN]) -> Result<Self, P256Error> {
        if uncompressed[0] != 0x04 {
            return Err(P256Error::InvalidPoint);
        }
        let point = Point::new()?;
        let ok = unsafe {
            sys::EC_POINT_oct2point(
                group(),
                point.0.as_ptr(),
                uncompressed.as_ptr(),
                uncompressed.len(),
                ptr::null_mut(),
            )
        };
        if ok != 1 {
            return fail(P256Error::InvalidPoint);
        }
        Ok(PublicPoint(point))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ece::tests::{b64, AS_PRIVATE, AS_PUBLIC, UA_PRIVATE, UA_PUBLIC};
    use aws_lc_rs::agreement;

    fn scalar(s: &str) -> [u8; 32] {
        b64(s).try_into().unwrap()
    }
    fn point(s: &str) -> [u8; 65] {
        b64(s).try_into().unwrap()
    }

    #[test]
    fn known_keys_and_shared_secret_agree_with_aws_lc_rs() {
        let as_key = KeyPair::from_scalar(&scalar(AS_PRIVATE)).unwrap();
        assert_eq!(as_key.public_key().unwrap(), point(AS_PUBLIC));
        let ua_key = KeyPair::from_scalar(&scalar(UA_PRIVATE)).unwrap();
        assert_eq!(ua_key.public_key().unwrap(), point(UA_PUBLIC));

        let ours = as_key
            .agree(&PublicPoint::parse(&point(UA_PUBLIC)).unwrap())
            .unwrap();
        let theirs = ua_key
            .agree(&PublicPoint::parse(&point(AS_PUBLIC)).unwrap())
            .unwrap();
        assert_eq!(ours, theirs);
        let reference = agreement::agree(
            &agreement::PrivateKey::from_private_key(&agreement::ECDH_P256, &b64(AS_PRIVATE))
                .unwrap(),
            agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, b64(UA_PUBLIC)),
            (),
            |s| Ok(s.to_vec()),
        )
        .unwrap();
        assert_eq!(ours.as_slice(), reference);
    }

    #[test]
    fn generated_keys_are_fresh_and_valid() {
        let a = KeyPair::generate().unwrap();
        let b = KeyPair::generate().unwrap();
        let (pa, pb) = (a.public_key().unwrap(), b.public_key().unwrap());
        assert_ne!(pa, pb);
        let ab = a.agree(&PublicPoint::parse(&pb).unwrap()).unwrap();
        let ba = b.agree(&PublicPoint::parse(&pa).unwrap()).unwrap();
        assert_eq!(ab, ba);
    }

    #[test]
    fn rejects_bad_scalars_and_points() {
        assert_eq!(
            KeyPair::from_scalar(&[0; 32]).err(),
            Some(P256Error::InvalidScalar)
        );
        assert_eq!(
            KeyPair::from_scalar(&[0xff; 32]).err(),
            Some(P256Error::InvalidScalar)
        );
        let mut p = point(UA_PUBLIC);
        p[64] ^= 1;
        assert_eq!(PublicPoint::parse(&p).err(), Some(P256Error::InvalidPoint));
        let mut p = point(UA_PUBLIC);
        p[0] = 0x03;
        assert_eq!(PublicPoint::parse(&p).err(), Some(P256Error::InvalidPoint));
        assert_eq!(
            PublicPoint::parse(&[0; 65]).err(),
            Some(P256Error::InvalidPoint)
        );
        // Coordinates >= p are refused even if they reduce to a curve point.
        let mut p = [0xffu8; 65];
        p[0] = 0x04;
        assert_eq!(PublicPoint::parse(&p).err(), Some(P256Error::InvalidPoint));
    }
}
