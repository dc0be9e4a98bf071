//! Every error the RPC layer returns becomes a `tonic::Status` here, and only here, with a
//! code that tells the caller what to do (retry, fix the request, give up).

use tonic::{Code, Status};

use crate::log::{ApplyError, CommandRefusal, ReadError, WriteError};
use crate::query::QueryError;

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
        ApplyError::Refused(CommandRefusal::UnknownSigner(_)) => Code::PermissionDenied,
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
