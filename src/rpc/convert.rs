//! Conversions between the RPC layer's protobuf types and the domain's plain types.

use crate::domain::{Outcome, RejectReason};
use crate::log::Envelope;
use crate::pb;

pub fn envelope(signed: pb::SignedObservation) -> Envelope {
    Envelope {
        body: signed.body,
        signature: signed.signature,
    }
}

pub fn ack(outcome: Outcome) -> pb::Ack {
    match outcome {
        Outcome::Accepted { index } => pb::Ack {
            status: pb::AckStatus::Accepted as i32,
            index,
            ..Default::default()
        },
        Outcome::Duplicate { index } => pb::Ack {
            status: pb::AckStatus::Duplicate as i32,
            index,
            ..Default::default()
        },
        Outcome::Rejected(rejection) => pb::Ack {
            status: pb::AckStatus::Rejected as i32,
            index: 0,
            reason: reject_reason(rejection.reason) as i32,
            message: rejection.message,
        },
    }
}

pub fn reject_reason(reason: RejectReason) -> pb::RejectReason {
    match reason {
        RejectReason::Invalid => pb::RejectReason::Invalid,
        RejectReason::BadSignature => pb::RejectReason::BadSignature,
        RejectReason::UnknownProbe => pb::RejectReason::UnknownProbe,
        RejectReason::ProbeRevoked => pb::RejectReason::ProbeRevoked,
        RejectReason::UnknownService => pb::RejectReason::UnknownService,
        RejectReason::StaleSeq => pb::RejectReason::StaleSeq,
        RejectReason::Equivocation => pb::RejectReason::Equivocation,
        RejectReason::TooLate => pb::RejectReason::TooLate,
        RejectReason::TooEarly => pb::RejectReason::TooEarly,
    }
}
