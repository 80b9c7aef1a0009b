//! `encrypt_rs`: RFC 8291 Web Push payload encryption and RFC 8292 VAPID
//! signing for Clarion, on AWS-LC (via `aws-lc-rs`).
//!
//! This file is the thin Python surface: it extracts arguments (any bytes-like
//! object; `bytes` are borrowed, other buffers copied), releases the GIL and
//! calls the plain-Rust cores in [`ece`] and [`vapid`].

pub mod ece;
pub mod error;
pub mod hmac_sha256;
pub mod http;
pub mod p256;
pub mod vapid;

use std::borrow::Cow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use rayon::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::Error;

/// Bytes of a bytes-like argument: borrowed from `bytes`, copied from any other
/// buffer (a `bytearray` could change under us once the GIL is released).
fn bytes_arg<'a>(obj: &'a Bound<'_, PyAny>, arg: &'static str) -> Result<Cow<'a, [u8]>, Error> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Cow::Borrowed(b.as_bytes()));
    }
    let not_bytes = || {
        let ty = obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".into());
        Error::wrong_type(arg, format!("must be bytes-like, not {ty}"))
    };
    if obj.is_instance_of::<PyString>() {
        return Err(not_bytes());
    }
    let buffer = PyBuffer::<u8>::get(obj).map_err(|_| not_bytes())?;
    buffer
        .to_vec(obj.py())
        .map(Cow::Owned)
        .map_err(|_| not_bytes())
}

fn opt_bytes_arg<'a>(
    obj: Option<&'a Bound<'_, PyAny>>,
    arg: &'static str,
) -> Result<Option<Cow<'a, [u8]>>, Error> {
    match obj {
        Some(o) if !o.is_none() => bytes_arg(o, arg).map(Some),
        _ => Ok(None),
    }
}

fn is_bytes_like(obj: &Bound<'_, PyAny>) -> bool {
    obj.cast::<PyBytes>().is_ok()
        || (!obj.is_instance_of::<PyString>() && PyBuffer::<u8>::get(obj).is_ok())
}

/// Runs `f`, turning a Rust panic into an error for this message only.
fn guarded<T>(f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(Err(Error::Crypto(
        "panic inside encrypt_rs (this is a bug)",
    )))
}

/// Encrypt one Web Push message (RFC 8291, `aes128gcm`) and return the whole body.
#[pyfunction]
#[pyo3(signature = (payload, p256dh, auth, *, record_size = 4096, salt = None, sender_private_key = None))]
fn encrypt<'py>(
    py: Python<'py>,
    payload: &Bound<'py, PyAny>,
    p256dh: &Bound<'py, PyAny>,
    auth: &Bound<'py, PyAny>,
    record_size: i64,
    salt: Option<&Bound<'py, PyAny>>,
    sender_private_key: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let payload = bytes_arg(payload, "payload")?;
    let p256dh = bytes_arg(p256dh, "p256dh")?;
    let auth = bytes_arg(auth, "auth")?;
    let salt = opt_bytes_arg(salt, "salt")?;
    let sender_private_key = opt_bytes_arg(sender_private_key, "sender_private_key")?;
    let record_size = ece::check_record_size(record_size)?;
    ece::check_payload(&payload, record_size)?;
    // The body is written straight into the returned `bytes`, without the GIL.
    PyBytes::new_with(py, ece::body_len(payload.len()), |out| {
        py.detach(|| {
            guarded(|| {
                ece::encrypt_into(
                    out,
                    &payload,
                    &p256dh,
                    &auth,
                    record_size,
                    salt.as_deref(),
                    sender_private_key.as_deref(),
                )
            })
        })
        .map_err(PyErr::from)
    })
}

/// The buffer of a new, not yet shared `bytes` object, filled by a worker
/// thread while the GIL is released.
#[derive(Clone, Copy)]
struct OutBuf {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: each `OutBuf` points into a distinct `bytes` object that this call
// created and keeps alive, and that no Python code can reach before the call
// returns; exactly one worker writes each buffer.
unsafe impl Send for OutBuf {}
unsafe impl Sync for OutBuf {}

/// A new `bytes` object of `len` bytes, contents unset, and its buffer.
fn new_out_bytes(py: Python<'_>, len: usize) -> PyResult<(Bound<'_, PyBytes>, OutBuf)> {
    let size = pyo3::ffi::Py_ssize_t::try_from(len)
        .map_err(|_| PyErr::from(Error::Crypto("body too large")))?;
    // SAFETY: PyBytes_FromStringAndSize(NULL, n) returns a new reference to a
    // bytes object of n (uninitialized) bytes, or NULL with an exception set.
    unsafe {
        let raw = pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), size);
        let obj = Bound::from_owned_ptr_or_err(py, raw)?.cast_into_unchecked::<PyBytes>();
        let ptr = pyo3::ffi::PyBytes_AsString(raw).cast::<u8>();
        Ok((obj, OutBuf { ptr, len }))
    }
}

/// The worker threads of `encrypt_batch`: one per core the process may use
/// (`RAYON_NUM_THREADS` overrides), named `encrypt_rs-N` for profilers.
///
/// Rebuilt after a `fork()`: a child inherits the pool's bookkeeping but not
/// its threads, and rayon's global pool would then wait for them forever.
fn pool() -> Result<Arc<ThreadPool>, Error> {
    static POOL: Mutex<Option<(u32, Arc<ThreadPool>)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut slot = POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((owner, pool)) = slot.as_ref() {
        if *owner == pid {
            return Ok(Arc::clone(pool));
        }
    }
    if let Some((_, inherited)) = slot.take() {
        // Its threads do not exist in this process: never join them.
        std::mem::forget(inherited);
    }
    let pool = Arc::new(
        ThreadPoolBuilder::new()
            .thread_name(|i| format!("encrypt_rs-{i}"))
            .build()
            .map_err(|_| Error::Crypto("cannot start the worker threads"))?,
    );
    *slot = Some((pid, Arc::clone(&pool)));
    Ok(pool)
}

/// A recipient's `(p256dh, auth)` objects.
type Pair<'py> = (Bound<'py, PyAny>, Bound<'py, PyAny>);

/// One message of a batch, with its arguments extracted and its output allocated.
struct Job<'a> {
    payload: Cow<'a, [u8]>,
    p256dh: Cow<'a, [u8]>,
    auth: Cow<'a, [u8]>,
    out: OutBuf,
}

/// Encrypt for many subscribers at once, on all cores, without the GIL.
#[pyfunction]
#[pyo3(signature = (payloads, recipients, *, record_size = 4096))]
fn encrypt_batch<'py>(
    py: Python<'py>,
    payloads: &Bound<'py, PyAny>,
    recipients: &Bound<'py, PyAny>,
    record_size: i64,
) -> PyResult<Bound<'py, PyList>> {
    let record_size = ece::check_record_size(record_size)?;
    if recipients.is_instance_of::<PyString>() || is_bytes_like(recipients) {
        return Err(
            Error::wrong_type("recipients", "must be a sequence of (p256dh, auth) pairs").into(),
        );
    }
    let recipients: Vec<Bound<'py, PyAny>> = recipients
        .try_iter()
        .map_err(|_| Error::wrong_type("recipients", "must be a sequence of (p256dh, auth) pairs"))?
        .collect::<PyResult<_>>()?;

    // One payload for everyone, or one per recipient.
    let shared: Option<Cow<'_, [u8]>>;
    let per_recipient: Vec<Bound<'py, PyAny>>;
    if is_bytes_like(payloads) {
        let p = bytes_arg(payloads, "payloads")?;
        ece::check_payload(&p, record_size).map_err(|e| match e {
            Error::InvalidArgument { reason, .. } => Error::invalid("payloads", reason),
            other => other,
        })?;
        shared = Some(p);
        per_recipient = Vec::new();
    } else {
        if payloads.is_instance_of::<PyString>() {
            return Err(Error::wrong_type(
                "payloads",
                "must be bytes-like or a sequence of bytes-like objects, not str",
            )
            .into());
        }
        per_recipient = payloads
            .try_iter()
            .map_err(|_| {
                Error::wrong_type(
                    "payloads",
                    "must be bytes-like or a sequence of bytes-like objects",
                )
            })?
            .collect::<PyResult<_>>()?;
        if per_recipient.len() != recipients.len() {
            return Err(Error::invalid(
                "payloads",
                format!(
                    "has {} items but recipients has {}; pass one payload per recipient \
                     or a single bytes-like payload for all",
                    per_recipient.len(),
                    recipients.len()
                ),
            )
            .into());
        }
        shared = None;
    }

    // Pull each recipient's pair out of Python (new references kept alive here).
    let pairs: Vec<Result<Pair<'py>, Error>> = recipients
        .iter()
        .map(|r| {
            let not_pair = || Error::wrong_type("", "must be a (p256dh, auth) pair");
            if let Ok(t) = r.cast::<PyTuple>() {
                // The usual case, without the buffer probe below.
                return match t.len() {
                    2 => Ok((
                        t.get_item(0).map_err(|_| not_pair())?,
                        t.get_item(1).map_err(|_| not_pair())?,
                    )),
                    _ => Err(not_pair()),
                };
            }
            if r.is_instance_of::<PyString>() || is_bytes_like(r) {
                return Err(not_pair());
            }
            match r.len() {
                Ok(2) => Ok((
                    r.get_item(0).map_err(|_| not_pair())?,
                    r.get_item(1).map_err(|_| not_pair())?,
                )),
                _ => Err(not_pair()),
            }
        })
        .collect();
    // Extract every argument and allocate every output `bytes` under the GIL…
    let mut outputs: Vec<Option<Bound<'py, PyBytes>>> = Vec::with_capacity(pairs.len());
    let mut jobs: Vec<Result<Job<'_>, Error>> = Vec::with_capacity(pairs.len());
    for (i, pair) in pairs.iter().enumerate() {
        let job = (|| {
            let (p256dh, auth) = pair.as_ref().map_err(Clone::clone)?;
            let payload = match &shared {
                Some(p) => Cow::Borrowed(p.as_ref()),
                None => bytes_arg(&per_recipient[i], "payload")?,
            };
            ece::check_payload(&payload, record_size)?;
            Ok((
                payload,
                bytes_arg(p256dh, "p256dh")?,
                bytes_arg(auth, "auth")?,
            ))
        })();
        match job {
            Ok((payload, p256dh, auth)) => {
                let (obj, out) = new_out_bytes(py, ece::body_len(payload.len()))?;
                outputs.push(Some(obj));
                jobs.push(Ok(Job {
                    payload,
                    p256dh,
                    auth,
                    out,
                }));
            }
            Err(e) => {
                outputs.push(None);
                jobs.push(Err(e));
            }
        }
    }

    // …then encrypt on every core without it, each worker writing its own slots.
    let pool = pool()?;
    let results: Vec<Result<(), Error>> = py.detach(|| {
        pool.install(|| {
            jobs.par_iter()
                .map(|job| match job {
                    Ok(j) => guarded(|| {
                        // SAFETY: see `OutBuf`; the object behind `j.out` is alive
                        // (held in `outputs`) and this is its only writer.
                        let out = unsafe { std::slice::from_raw_parts_mut(j.out.ptr, j.out.len) };
                        ece::encrypt_into(
                            out,
                            &j.payload,
                            &j.p256dh,
                            &j.auth,
                            record_size,
                            None,
                            None,
                        )
                    }),
                    Err(e) => Err(e.clone()),
                })
                .collect()
        })
    });

    let list = PyList::empty(py);
    for (i, (result, output)) in results.into_iter().zip(outputs).enumerate() {
        match (result, output) {
            (Ok(()), Some(body)) => list.append(body)?,
            (Err(e), _) => list.append(
                e.to_pyerr_with_prefix(&format!("recipient {i}: "))
                    .into_value(py),
            )?,
            (Ok(()), None) => unreachable!("a successful slot always has an output"),
        }
    }
    Ok(list)
}

/// One application server (site) key for RFC 8292 VAPID.
#[pyclass(frozen, module = "encrypt_rs", name = "VapidSigner")]
struct VapidSigner {
    inner: vapid::Signer,
}

#[pymethods]
impl VapidSigner {
    #[new]
    fn new(py: Python<'_>, private_key: &Bound<'_, PyAny>) -> PyResult<Self> {
        let key: Cow<'_, [u8]> = match private_key.cast::<PyString>() {
            Ok(s) => Cow::Owned(s.to_str()?.as_bytes().to_vec()),
            Err(_) => bytes_arg(private_key, "private_key").map_err(|_| {
                Error::wrong_type(
                    "private_key",
                    "must be bytes-like (raw scalar or DER) or a PEM str",
                )
            })?,
        };
        let inner = py.detach(|| guarded(|| vapid::Signer::new(&key)))?;
        Ok(VapidSigner { inner })
    }

    /// The 65-byte uncompressed P-256 public key (the VAPID `k`).
    #[getter]
    fn public_key<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.public_key())
    }

    /// The `Authorization` header value `vapid t=<jwt>, k=<key>`.
    #[pyo3(signature = (audience, subject, expires_in = 43200, *, now = None))]
    fn authorization(
        &self,
        py: Python<'_>,
        audience: &str,
        subject: &str,
        expires_in: i64,
        now: Option<f64>,
    ) -> PyResult<String> {
        let value = match now {
            None => {
                py.detach(|| guarded(|| self.inner.authorization(audience, subject, expires_in)))
            }
            Some(t) if t.is_finite() && t >= 0.0 => py.detach(|| {
                guarded(|| {
                    self.inner
                        .authorization_at(audience, subject, expires_in, t)
                })
            }),
            Some(t) => Err(Error::invalid(
                "now",
                format!("must be a finite, non-negative Unix time, got {t}"),
            )),
        };
        Ok(value?)
    }

    fn __repr__(&self) -> String {
        use base64::Engine;
        format!(
            "VapidSigner(public_key={:?})",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.inner.public_key())
        )
    }
}

/// RFC 8291 Web Push encryption and RFC 8292 VAPID signing (AWS-LC).
#[pymodule]
fn encrypt_rs(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(encrypt, m)?)?;
    m.add_function(wrap_pyfunction!(encrypt_batch, m)?)?;
    m.add_class::<VapidSigner>()?;
    m.add_class::<http::PushClient>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
