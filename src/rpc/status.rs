//! Every error the RPC layer returns becomes a `tonic::Status` here, and only here, with a
//! code that tells the caller what to do (retry, fix the request, give up).

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::admission::{Overloaded, RateLimited};
use super::client_cert::CertificateRefusal;
use super::ingest::IngestRefusal;
use crate::log::{ApplyError, CommandRefusal, ReadError, WriteError};
use crate::query::QueryError;
use crate::read_token::Denied;

pub fn write_error(error: WriteError) -> Status {
    match error {
        WriteError::Unavailable(_) => Status::unavailable(error.to_string()),
        WriteError::DiskFull(_) => Status::resource_exhausted(error.to_string()),
    }
}

pub fn apply_error(error: ApplyError) -> Status {
    let code = match &error {
        ApplyError::Invalid(_) => Code::InvalidArgument,
        ApplyError::BadSignature(_) => Code::Unauthenticated,
        ApplyError::Refused(
            CommandRefusal::UnknownSigner(_) | CommandRefusal::RevokedSigner { .. },
        ) => Code::PermissionDenied,
        ApplyError::Refused(CommandRefusal::StaleSeq { .. } | CommandRefusal::Conflict(_)) => {
            Code::FailedPrecondition
        }
        ApplyError::Refused(CommandRefusal::NotFound(_)) => Code::NotFound,
        ApplyError::Write(write) => return write_error(write.clone()),
    };
    Status::new(code, error.to_string())
}

pub fn read_error(error: ReadError) -> Status {
    match error {
        ReadError::OutOfRange(message) => Status::out_of_range(message),
        ReadError::NotFound(message) => Status::not_found(message),
        ReadError::Storage(message) => Status::internal(message),
    }
}

pub fn query_error(error: QueryError) -> Status {
    match error {
        QueryError::UnknownService(_) => Status::not_found(error.to_string()),
        QueryError::BadWindow(message) => Status::invalid_argument(message),
        QueryError::Prefix(read) => read_error(read),
    }
}

pub fn invalid_argument(message: impl Into<String>) -> Status {
    Status::invalid_argument(message)
}

/// A whole ingest call refused (see [`IngestRefusal`]).
pub fn ingest_refusal(refusal: IngestRefusal) -> Status {
    match refusal {
        IngestRefusal::Overloaded(overloaded) => self::overloaded(overloaded),
        IngestRefusal::RateLimited(limited) => rate_limited(&limited),
        IngestRefusal::Certificate(refusal) => certificate_refusal(refusal),
        IngestRefusal::TooManyObservations { .. } => Status::invalid_argument(refusal.to_string()),
        IngestRefusal::Write(error) => write_error(error),
        IngestRefusal::EarlierChunkRefused => Status::aborted(refusal.to_string()),
        IngestRefusal::Transport(status) => status,
        IngestRefusal::TaskFailed(_) => Status::internal(refusal.to_string()),
    }
}

/// Shed before anything was decoded: retry with backoff.
pub fn overloaded(overloaded: Overloaded) -> Status {
    Status::unavailable(overloaded.to_string())
}

/// Over a probe's rate: RetryInfo says when the call would fit, if it ever can.
pub fn rate_limited(limited: &RateLimited) -> Status {
    match limited.retry_after {
        Some(delay) => Status::with_error_details(
            Code::ResourceExhausted,
            limited.to_string(),
            ErrorDetails::with_retry_info(Some(delay)),
        ),
        None => Status::resource_exhausted(limited.to_string()),
    }
}

/// No usable client certificate: UNAUTHENTICATED; one that vouches for other probes:
/// PERMISSION_DENIED.
pub fn certificate_refusal(refusal: CertificateRefusal) -> Status {
    match refusal {
        CertificateRefusal::Missing | CertificateRefusal::Unreadable(_) => {
            Status::unauthenticated(refusal.to_string())
        }
        CertificateRefusal::NamesNoProbe | CertificateRefusal::OtherProbe { .. } => {
            Status::permission_denied(refusal.to_string())
        }
    }
}

/// A read of the log without the read token it needs.
pub fn read_token_denied(denied: Denied) -> Status {
    Status::unauthenticated(denied.to_string())
}

/// gRPC in plain text on a port that serves TLS only.
pub fn plaintext_refused(message: &str) -> Status {
    Status::unavailable(message)
}

/// A `WatchStates` consumer too slow for the changes: it reconnects for the current states.
pub fn watch_lagged(missed: u64) -> Status {
    Status::resource_exhausted(format!(
        "this WatchStates consumer fell {missed} changes behind and was disconnected; reconnect to get the current states"
    ))
}
