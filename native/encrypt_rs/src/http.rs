//! Posting encrypted pushes to push services, off the Python event loop.
//!
//! A [`PushClient`] owns a small tokio runtime and one pooled HTTP client (HTTP/1.1
//! keep-alive, HTTP/2 where the push service offers it over ALPN, rustls on AWS-LC).
//! Python hands it requests in batches ([`PushClient::submit`] returns at once) and
//! collects the answers as they finish ([`PushClient::drain`]); a byte written to a
//! socket pair whose read end Python watches (`fileno()`, e.g. with
//! `loop.add_reader`) says that answers are waiting. Python keeps every decision
//! (retry, prune, fail): this module only reports status, `Retry-After`, a bounded
//! excerpt of the body, or which way the request failed.
//!
//! Where a connection may go is also Python's decision: when `address_check` is
//! given, every name is resolved here and the resolved addresses are passed to it
//! before any connection is opened (DNS rebinding is caught at connect time).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};

use crate::bytes_arg;

/// At most this much of an answer's body is read and handed back.
const EXCERPT_BYTES: usize = 800;

/// How a request failed when it got no HTTP answer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Failure {
    None,
    Timeout,
    Connection,
    /// The address check refused every address the name resolved to.
    Refused,
    /// The URL or a header could not be used at all.
    Invalid,
}

impl Failure {
    fn as_str(self) -> &'static str {
        match self {
            Failure::None => "",
            Failure::Timeout => "timeout",
            Failure::Connection => "connection",
            Failure::Refused => "refused",
            Failure::Invalid => "invalid",
        }
    }
}

struct Answer {
    tag: u64,
    status: u16,
    retry_after: Option<String>,
    excerpt: Vec<u8>,
    failure: Failure,
    detail: String,
}

impl Answer {
    fn failed(tag: u64, detail: &str) -> Self {
        Answer {
            tag,
            status: 0,
            retry_after: None,
            excerpt: Vec::new(),
            failure: Failure::Connection,
            detail: detail.to_owned(),
        }
    }
}

/// The refusal an address check made; found again in reqwest's error chain.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Resolves names, then lets Python's policy refuse the addresses before connecting.
struct CheckedResolver {
    check: Arc<Py<PyAny>>,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let check = Arc::clone(&self.check);
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let shown: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
            let verdict: Result<Option<String>, String> = Python::attach(|py| {
                check
                    .call1(py, (host.as_str(), shown))
                    .and_then(|v| v.extract::<Option<String>>(py))
                    .map_err(|e| format!("the address check failed: {e}"))
            });
            match verdict {
                Ok(None) => Ok(Box::new(addrs.into_iter()) as Addrs),
                Ok(Some(why)) | Err(why) => {
                    Err(Box::new(Refused(why)) as Box<dyn std::error::Error + Send + Sync>)
                }
            }
        })
    }
}

struct Shared {
    done: Mutex<Vec<Answer>>,
    wake: UnixStream,
    in_flight: AtomicUsize,
}

impl Shared {
    fn finish(&self, answer: Answer) {
        let was_empty = {
            let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
            done.push(answer);
            done.len() == 1
        };
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        if was_empty {
            // A full socket buffer already holds a wake-up: nothing is lost.
            let _ = (&self.wake).write(&[1]);
        }
    }
}

/// One push service request: where, what, and its own Authorization header.
struct Request {
    tag: u64,
    url: String,
    body: Vec<u8>,
    authorization: String,
}

/// HTTP to push services on a runtime of its own; see the module docs.
#[pyclass(frozen, module = "encrypt_rs", name = "PushClient")]
pub struct PushClient {
    client: reqwest::Client,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    shared: Arc<Shared>,
    wake_reader: UnixStream,
}

fn tls_config() -> PyResult<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PyRuntimeError::new_err(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn failure_of(error: &reqwest::Error) -> (Failure, String) {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(refused) = current.downcast_ref::<Refused>() {
            return (Failure::Refused, refused.0.clone());
        }
        source = current.source();
    }
    if error.is_timeout() {
        (Failure::Timeout, String::new())
    } else if error.is_builder() {
        (Failure::Invalid, error.to_string())
    } else {
        (Failure::Connection, error.to_string())
    }
}

async fn post(client: reqwest::Client, headers: Arc<HeaderMap>, request: Request) -> Answer {
    let mut answer = Answer {
        tag: request.tag,
        status: 0,
        retry_after: None,
        excerpt: Vec::new(),
        failure: Failure::None,
        detail: String::new(),
    };
    let authorization = match HeaderValue::from_str(&request.authorization) {
        Ok(value) => value,
        Err(_) => {
            answer.failure = Failure::Invalid;
            answer.detail = "the Authorization header is not a valid header value".into();
            return answer;
        }
    };
    let sent = client
        .post(&request.url)
        .headers((*headers).clone())
        .header(reqwest::header::AUTHORIZATION, authorization)
        .body(request.body)
        .send()
        .await;
    let mut response = match sent {
        Ok(response) => response,
        Err(error) => {
            (answer.failure, answer.detail) = failure_of(&error);
            return answer;
        }
    };
    answer.status = response.status().as_u16();
    answer.retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Read a bounded part of the body; an answer cut short is dropped with its connection.
    while answer.excerpt.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = EXCERPT_BYTES - answer.excerpt.len();
                answer
                    .excerpt
                    .extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    answer
}

#[pymethods]
impl PushClient {
    #[new]
    #[pyo3(signature = (timeout_seconds, *, address_check = None, threads = 1, user_agent = "clarion"))]
    fn new(
        timeout_seconds: f64,
        address_check: Option<Py<PyAny>>,
        threads: usize,
        user_agent: &str,
    ) -> PyResult<Self> {
        if !(timeout_seconds.is_finite() && timeout_seconds > 0.0) {
            return Err(PyValueError::new_err(
                "timeout_seconds must be a positive number",
            ));
        }
        if !(1..=64).contains(&threads) {
            return Err(PyValueError::new_err("threads must be between 1 and 64"));
        }
        let mut builder = reqwest::Client::builder()
            .use_preconfigured_tls(tls_config()?)
            .timeout(Duration::from_secs_f64(timeout_seconds))
            .connect_timeout(Duration::from_secs_f64(timeout_seconds))
            // A redirect is not an answer, and no proxy from the environment: the
            // address check is about where the connection really goes.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(user_agent)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true);
        if let Some(check) = address_check {
            builder = builder.dns_resolver(Arc::new(CheckedResolver {
                check: Arc::new(check),
            }));
        }
        let client = builder
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot build the HTTP client: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("encrypt_rs-http")
            .enable_all()
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start the HTTP runtime: {e}")))?;
        let (wake_reader, wake) = UnixStream::pair()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot make the wake-up socket: {e}")))?;
        for end in [&wake_reader, &wake] {
            end.set_nonblocking(true)
                .map_err(|e| PyRuntimeError::new_err(format!("wake-up socket: {e}")))?;
        }
        Ok(PushClient {
            client,
            runtime: Mutex::new(Some(runtime)),
            shared: Arc::new(Shared {
                done: Mutex::new(Vec::new()),
                wake,
                in_flight: AtomicUsize::new(0),
            }),
            wake_reader,
        })
    }

    /// The file descriptor that becomes readable when answers are waiting.
    fn fileno(&self) -> i32 {
        self.wake_reader.as_raw_fd()
    }

    /// Requests submitted and not yet drained as answers.
    #[getter]
    fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Acquire)
    }

    /// Starts POSTing each `(tag, url, body, authorization)` with `headers` added to
    /// every one; returns at once.
    fn submit(
        &self,
        py: Python<'_>,
        requests: &Bound<'_, PyAny>,
        headers: Vec<(String, String)>,
    ) -> PyResult<()> {
        let mut header_map = HeaderMap::with_capacity(headers.len());
        for (name, value) in &headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                PyValueError::new_err(format!("headers: {name:?} is not a header name"))
            })?;
            let value = HeaderValue::from_str(value).map_err(|_| {
                PyValueError::new_err(format!("headers: the value of {name} is not valid"))
            })?;
            header_map.insert(name, value);
        }
        let header_map = Arc::new(header_map);
        let mut batch = Vec::new();
        for (index, item) in requests.try_iter()?.enumerate() {
            let item = item?;
            let item = item
                .cast::<PyTuple>()
                .map_err(|_| PyTypeError::new_err(format!("request {index}: must be a tuple")))?;
            if item.len() != 4 {
                return Err(PyTypeError::new_err(format!(
                    "request {index}: must be (tag, url, body, authorization)"
                )));
            }
            let tag: u64 = item.get_item(0)?.extract()?;
            let url: String = item.get_item(1)?.extract()?;
            let body = bytes_arg(&item.get_item(2)?, "body")
                .map_err(|e| e.to_pyerr_with_prefix(&format!("request {index}: ")))?
                .into_owned();
            let authorization: String = item.get_item(3)?.extract()?;
            batch.push(Request {
                tag,
                url,
                body,
                authorization,
            });
        }
        let runtime = self.runtime.lock().unwrap_or_else(|p| p.into_inner());
        let Some(runtime) = runtime.as_ref() else {
            return Err(PyRuntimeError::new_err("the PushClient is closed"));
        };
        self.shared
            .in_flight
            .fetch_add(batch.len(), Ordering::AcqRel);
        py.detach(|| {
            for request in batch {
                let client = self.client.clone();
                let headers = Arc::clone(&header_map);
                let shared = Arc::clone(&self.shared);
                let tag = request.tag;
                runtime.spawn(async move {
                    // A request that panics still gets an answer: Python waits for one
                    // per request, and every recipient must end in a terminal state.
                    let answer = match tokio::spawn(post(client, headers, request)).await {
                        Ok(answer) => answer,
                        Err(_) => Answer::failed(tag, "the request task panicked (a bug)"),
                    };
                    shared.finish(answer);
                });
            }
        });
        Ok(())
    }

    /// The answers finished so far, each `(tag, status, retry_after, excerpt,
    /// failure, detail)`: `status` 0 with `failure` one of "timeout", "connection",
    /// "refused", "invalid" when there was no HTTP answer.
    fn drain<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        // The wake-up bytes first, then the answers: an answer finished after the
        // swap below writes a new byte, so none waits unannounced.
        let mut sink = [0u8; 256];
        while let Ok(n) = (&self.wake_reader).read(&mut sink) {
            if n == 0 {
                break;
            }
        }
        let answers =
            std::mem::take(&mut *self.shared.done.lock().unwrap_or_else(|p| p.into_inner()));
        let items = answers
            .into_iter()
            .map(|a| {
                (
                    a.tag,
                    a.status,
                    a.retry_after,
                    PyBytes::new(py, &a.excerpt),
                    a.failure.as_str(),
                    a.detail,
                )
                    .into_pyobject(py)
            })
            .collect::<Result<Vec<_>, _>>()?;
        PyList::new(py, items)
    }

    /// Stops the runtime; requests still in flight are abandoned without an answer.
    fn close(&self, py: Python<'_>) {
        let runtime = self
            .runtime
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(runtime) = runtime {
            py.detach(|| runtime.shutdown_timeout(Duration::from_secs(1)));
        }
    }

    fn __repr__(&self) -> String {
        format!("<PushClient in_flight={}>", self.in_flight())
    }
}
