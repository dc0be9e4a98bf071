//! `AdminService`: operators' signed commands.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::status;
use crate::log::{CommandOutcome, Ledger};
use crate::pb;
use crate::pb::admin_service_server::AdminService;

pub struct AdminApi {
    pub ledger: Arc<Ledger>,
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn apply(
        &self,
        request: Request<pb::ApplyRequest>,
    ) -> Result<Response<pb::ApplyResponse>, Status> {
        let signed = request
            .into_inner()
            .command
            .ok_or_else(|| status::invalid_argument("ApplyRequest.command is required"))?;
        let outcome = self
            .ledger
            .apply(signed.signer, signed.body, signed.signature)
            .await
            .map_err(status::apply_error)?;
        let (index, duplicate, proposal) = match outcome {
            CommandOutcome::Applied { index, proposal } => (index, false, proposal),
            CommandOutcome::AlreadyApplied { index, proposal } => (index, true, proposal),
            CommandOutcome::Refused(refusal) => return Err(status::apply_error(refusal.into())),
        };
        tracing::info!(index, duplicate, "admin command applied");
        Ok(Response::new(pb::ApplyResponse {
            index,
            duplicate,
            proposal: proposal.map(|progress| pb::ProposalProgress {
                digest: progress.digest.to_vec(),
                approvals: progress.approvals,
                threshold: progress.threshold,
                in_force: progress.in_force,
            }),
        }))
    }
}
