//! The crate's single error type and its mapping to Python exceptions.

use std::borrow::Cow;
use std::fmt;

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::PyErr;

/// Every failure of the crate. `arg` names the Python argument at fault so that
/// the exception message says which one is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The argument has the right type but an unacceptable value
    /// (wrong length, not a point on the curve, too large…). -> `ValueError`
    InvalidArgument {
        arg: &'static str,
        reason: Cow<'static, str>,
    },
    /// The argument has the wrong type (e.g. `str` where bytes are needed). -> `TypeError`
    WrongType {
        arg: &'static str,
        reason: Cow<'static, str>,
    },
    /// An internal failure of the crypto library (should never happen). -> `RuntimeError`
    Crypto(&'static str),
}

impl Error {
    pub fn invalid(arg: &'static str, reason: impl Into<Cow<'static, str>>) -> Self {
        Error::InvalidArgument {
            arg,
            reason: reason.into(),
        }
    }

    pub fn wrong_type(arg: &'static str, reason: impl Into<Cow<'static, str>>) -> Self {
        Error::WrongType {
            arg,
            reason: reason.into(),
        }
    }

    /// The same error with its message prefixed, e.g. `"recipient 3: "`.
    pub fn to_pyerr_with_prefix(&self, prefix: &str) -> PyErr {
        let msg = format!("{prefix}{self}");
        match self {
            Error::InvalidArgument { .. } => PyValueError::new_err(msg),
            Error::WrongType { .. } => PyTypeError::new_err(msg),
            Error::Crypto(_) => PyRuntimeError::new_err(msg),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument { arg, reason } | Error::WrongType { arg, reason } => {
                if arg.is_empty() {
                    f.write_str(reason)
                } else {
                    write!(f, "{arg} {reason}")
                }
            }
            Error::Crypto(what) => write!(f, "internal crypto failure: {what}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<aws_lc_rs::error::Unspecified> for Error {
    fn from(_: aws_lc_rs::error::Unspecified) -> Self {
        Error::Crypto("aws-lc reported an unspecified error")
    }
}

impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        err.to_pyerr_with_prefix("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_the_argument() {
        let e = Error::invalid("auth", "must be 16 bytes, got 15");
        assert_eq!(e.to_string(), "auth must be 16 bytes, got 15");
        let e = Error::wrong_type("payload", "must be bytes-like, not str");
        assert_eq!(e.to_string(), "payload must be bytes-like, not str");
        let e: Error = aws_lc_rs::error::Unspecified.into();
        assert!(matches!(e, Error::Crypto(_)));
    }
}
