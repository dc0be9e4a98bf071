//! The simulated government endpoints: `GET /{probe_id}/{service_id}` answers as the
//! [`Script`] says that service looks from that probe's network at this moment. Each probe
//! checks its own path, which is how one network can see an outage the others do not.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use super::script::{Health, Script, PROBES, SERVICES};
use crate::clock::Clock;

/// How long a "timed out" answer hangs before the server gives up on it (longer than any
/// demo probe's timeout).
pub const HANG: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct Simulator {
    script: Script,
    clock: Arc<dyn Clock>,
}

/// Every simulated endpoint.
pub fn router(script: Script, clock: Arc<dyn Clock>) -> Router {
    Router::new()
        .route("/{probe_id}/{service_id}", get(answer))
        .with_state(Simulator { script, clock })
}

/// Serves the simulated endpoints on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    script: Script,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(script, clock))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn answer(
    State(sim): State<Simulator>,
    Path((probe_id, service_id)): Path<(String, String)>,
) -> (StatusCode, String) {
    let probe = PROBES.iter().position(|p| p.probe_id == probe_id);
    let service = SERVICES.iter().position(|s| s.service_id == service_id);
    let (Some(probe), Some(service)) = (probe, service) else {
        return (StatusCode::NOT_FOUND, "no such simulated endpoint\n".into());
    };
    let name = SERVICES[service].name;
    match sim.script.health(service, probe, sim.clock.now_millis()) {
        Health::Up => (StatusCode::OK, format!("{name}: OK\n")),
        Health::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{name}: service unavailable\n"),
        ),
        Health::Maintenance => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{name}: down for planned maintenance\n"),
        ),
        Health::Timeout => {
            tokio::time::sleep(HANG).await;
            (StatusCode::GATEWAY_TIMEOUT, format!("{name}: no route\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::demo::script::MINUTE;

    async fn get_status(address: std::net::SocketAddr, path: &str) -> u16 {
        reqwest::get(format!("http://{address}{path}"))
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    #[tokio::test]
    async fn endpoints_answer_as_the_script_says() {
        let anchor = 1_790_000_000_000;
        let clock = Arc::new(ManualClock::new(anchor - MINUTE));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, Script::new(anchor), clock.clone(), async {
            let _ = stopped.await;
        }));
        assert_eq!(
            get_status(address, "/capital-dc/immigration.passport").await,
            200
        );
        clock.set(anchor + 2 * MINUTE);
        assert_eq!(
            get_status(address, "/capital-dc/immigration.passport").await,
            503
        );
        assert_eq!(
            get_status(address, "/nowhere/immigration.passport").await,
            404
        );
        assert_eq!(get_status(address, "/capital-dc/nothing").await, 404);
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }
}
