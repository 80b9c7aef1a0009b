//! AWS-LC's HMAC-SHA-256 with one `HMAC_CTX` reused for a message's whole HKDF chain.
//!
//! `aws_lc_rs::hmac` builds, copies and cleanses an `HMAC_CTX` for every key and
//! every tag; RFC 8291 needs five tags under four fresh keys per message, and
//! that bookkeeping cost as much as the 20 SHA-256 compressions themselves
//! (2.2 µs against 1.3 µs here; see docs/performance.md). The MAC is still
//! AWS-LC's `HMAC_Init_ex`/`HMAC_Update`/`HMAC_Final`, nothing is re-implemented.

use std::mem::MaybeUninit;
use std::ptr;

use aws_lc_sys as sys;

use crate::error::Error;

pub const TAG_LEN: usize = 32;

pub struct HmacSha256 {
    ctx: sys::HMAC_CTX,
    keyed: bool,
}

impl Default for HmacSha256 {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for HmacSha256 {
    fn drop(&mut self) {
        // Cleanses the key schedule and the hash states.
        unsafe { sys::HMAC_CTX_cleanup(&mut self.ctx) }
    }
}

fn failed() -> Error {
    unsafe { sys::ERR_clear_error() };
    Error::Crypto("HMAC-SHA-256 failed")
}

impl HmacSha256 {
    pub fn new() -> Self {
        let mut ctx = MaybeUninit::<sys::HMAC_CTX>::uninit();
        // SAFETY: HMAC_CTX_init fully initializes the context; HMAC_CTX holds no
        // pointers into itself, so it may be moved afterwards.
        unsafe { sys::HMAC_CTX_init(ctx.as_mut_ptr()) };
        HmacSha256 {
            ctx: unsafe { ctx.assume_init() },
            keyed: false,
        }
    }

    /// HMAC-SHA-256(`key`, concatenation of `parts`); `key` stays set for
    /// [`Self::tag_same_key`].
    pub fn tag(&mut self, key: &[u8], parts: &[&[u8]]) -> Result<[u8; TAG_LEN], Error> {
        // SAFETY: `self.ctx` is initialized; `key` is valid for `key.len()` bytes.
        let ok = unsafe {
            sys::HMAC_Init_ex(
                &mut self.ctx,
                key.as_ptr().cast(),
                key.len(),
                sys::EVP_sha256(),
                ptr::null_mut(),
            )
        };
        if ok != 1 {
            return Err(failed());
        }
        self.keyed = true;
        self.finish(parts)
    }

    /// HMAC-SHA-256 under the key of the previous [`Self::tag`] call.
    pub fn tag_same_key(&mut self, parts: &[&[u8]]) -> Result<[u8; TAG_LEN], Error> {
        if !self.keyed {
            return Err(Error::Crypto("HMAC used before a key was set"));
        }
        // SAFETY: with a NULL key and md, AWS-LC restarts from the stored key.
        let ok = unsafe {
            sys::HMAC_Init_ex(&mut self.ctx, ptr::null(), 0, ptr::null(), ptr::null_mut())
        };
        if ok != 1 {
            return Err(failed());
        }
        self.finish(parts)
    }

    fn finish(&mut self, parts: &[&[u8]]) -> Result<[u8; TAG_LEN], Error> {
        for part in parts {
            // SAFETY: `part` is valid for `part.len()` bytes.
            if unsafe { sys::HMAC_Update(&mut self.ctx, part.as_ptr(), part.len()) } != 1 {
                return Err(failed());
            }
        }
        let mut out = [0u8; TAG_LEN];
        let mut len = 0u32;
        // SAFETY: `out` has room for SHA-256's 32 bytes.
        if unsafe { sys::HMAC_Final(&mut self.ctx, out.as_mut_ptr(), &mut len) } != 1
            || len as usize != TAG_LEN
        {
            return Err(failed());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::hmac;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn rfc4231_vectors() {
        let mut mac = HmacSha256::new();
        // Test case 1.
        assert_eq!(
            mac.tag(&[0x0b; 20], &[b"Hi There"]).unwrap().to_vec(),
            hex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        );
        // Test case 2, the message in two parts.
        assert_eq!(
            mac.tag(b"Jefe", &[b"what do ya want ", b"for nothing?"])
                .unwrap()
                .to_vec(),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
        // Test case 6: a key longer than the block size.
        assert_eq!(
            mac.tag(
                &[0xaa; 131],
                &[b"Test Using Larger Than Block-Size Key - Hash Key First"]
            )
            .unwrap()
            .to_vec(),
            hex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
        );
        // The key of the last call is reused.
        assert_eq!(
            mac.tag_same_key(&[b"Test Using Larger Than Block-Size Key - Hash Key First"])
                .unwrap()
                .to_vec(),
            hex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
        );
    }

    #[test]
    fn agrees_with_aws_lc_rs() {
        let mut mac = HmacSha256::new();
        for len in [0usize, 1, 31, 32, 63, 64, 65, 145, 1000] {
            let key: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let data: Vec<u8> = (0..len * 3).map(|i| (i * 7) as u8).collect();
            let expected = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), &data);
            assert_eq!(mac.tag(&key, &[&data]).unwrap(), expected.as_ref());
            assert_eq!(mac.tag_same_key(&[&data]).unwrap(), expected.as_ref());
        }
    }

    #[test]
    fn same_key_needs_a_key() {
        assert!(HmacSha256::new().tag_same_key(&[b"x"]).is_err());
    }
}
