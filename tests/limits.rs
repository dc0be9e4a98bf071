//! The servers' limits against real sockets: the connection caps (gRPC and HTTP), the
//! header size limits, silent and slow clients (idle timeout, HTTP/1 header timeout),
//! while well-behaved clients — including an idle gRPC subscriber kept alive by pings —
//! are unaffected.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::transport::Channel;
use uptime_ledger::domain::Status;
use uptime_ledger::limits::Limits;
use uptime_ledger::pb;
use uptime_ledger::pb::log_service_client::LogServiceClient;

fn host_port(address: &str) -> &str {
    address.trim_start_matches("http://")
}

async fn checkpoint_over(channel: Channel) -> Result<u64, tonic::Status> {
    LogServiceClient::new(channel)
        .get_checkpoint(pb::GetCheckpointRequest { tree_size: 0 })
        .await
        .map(|response| response.into_inner().tree_size)
}

/// Reads until the server closes the connection (EOF or reset); returns what it sent and
/// how long that took. Panics after `limit`.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(
            tokio::time::Instant::from_std(started + limit),
            stream.read(&mut buffer),
        )
        .await
        {
            Err(_) => panic!(
                "the server kept the connection open for {limit:?} (received {} bytes)",
                received.len()
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return (received, started.elapsed()),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

#[tokio::test]
async fn a_grpc_connection_over_the_cap_is_closed_at_once_and_a_freed_slot_is_reused() {
    let ledger = TestLedger::start_with_limits(Limits {
        grpc_max_connections: 3,
        ..Limits::default()
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let channel = ledger.channel().await;
        checkpoint_over(channel.clone()).await.unwrap();
        open.push(channel);
    }

    // Connection 4 is accepted and closed: the client fails fast instead of hanging.
    let started = Instant::now();
    let refused = async {
        let channel = uptime_ledger::client::connect(&ledger.address).await?;
        checkpoint_over(channel).await.map_err(Into::into)
    };
    let refused: Result<u64, Box<dyn std::error::Error>> = refused.await;
    assert!(refused.is_err(), "connection 4 must be refused");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused at once, not after a timeout ({:?})",
        started.elapsed()
    );
    // The three admitted connections still work.
    for channel in &open {
        checkpoint_over(channel.clone()).await.unwrap();
    }

    // Closing one frees its slot for a new client.
    open.pop();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = async {
            let channel = uptime_ledger::client::connect(&ledger.address).await.ok()?;
            checkpoint_over(channel).await.ok()
        };
        if attempt.await.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot was never reused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_http_connection_over_the_cap_is_closed_at_once() {
    let ledger = TestLedger::start_with_limits(Limits {
        http_max_connections: 2,
        ..Limits::default()
    })
    .await;
    let address = host_port(&ledger.http_address).to_owned();
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        let mut buffer = [0u8; 1024];
        let n = stream.read(&mut buffer).await.unwrap();
        assert!(buffer[..n].starts_with(b"HTTP/1.1 200"));
        held.push(stream); // kept alive: each still holds its slot
    }
    let mut third = TcpStream::connect(&address).await.unwrap();
    let _ = third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    let (received, elapsed) = read_until_closed(&mut third, Duration::from_secs(5)).await;
    assert!(received.is_empty(), "no answer over the cap");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");

    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    while ledger.http_get("/healthz").await.status != 200 {
        assert!(Instant::now() < deadline);
    }
}

#[tokio::test]
async fn an_oversized_header_list_is_refused_and_the_server_goes_on() {
    let ledger = TestLedger::start_with_limits(Limits {
        max_header_bytes: 4096,
        ..Limits::default()
    })
    .await;
    let channel = ledger.channel().await;

    let mut request = tonic::Request::new(pb::GetCheckpointRequest { tree_size: 0 });
    request
        .metadata_mut()
        .insert("x-padding", "x".repeat(8 * 1024).parse().unwrap());
    let refused = LogServiceClient::new(channel.clone())
        .get_checkpoint(request)
        .await
        .expect_err("an 8 KiB header is over the 4 KiB limit");
    // The HTTP/2 layer refuses the stream with HTTP 431 before any gRPC handler runs, so the
    // client sees UNKNOWN "mapped from HTTP status code 431".
    assert!(refused.message().contains("431"), "{refused:?}");

    // Within the limit, on a fresh channel, everything works.
    let mut request = tonic::Request::new(pb::GetCheckpointRequest { tree_size: 0 });
    request
        .metadata_mut()
        .insert("x-padding", "x".repeat(1024).parse().unwrap());
    LogServiceClient::new(ledger.channel().await)
        .get_checkpoint(request)
        .await
        .expect("a 1 KiB header is fine");

    // HTTP/1.1: a request head over the limit gets 431 or a closed connection.
    let mut stream = TcpStream::connect(host_port(&ledger.http_address))
        .await
        .unwrap();
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: test\r\nX-Padding: {}\r\n\r\n",
        "x".repeat(64 * 1024)
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let (received, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    let answer = String::from_utf8_lossy(&received);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    assert_eq!(ledger.http_get("/healthz").await.status, 200);
}

#[tokio::test]
async fn silent_grpc_clients_are_dropped_but_idle_live_ones_are_kept_by_keepalive() {
    let mut ledger = TestLedger::start_with_limits(Limits {
        idle_timeout: Duration::from_millis(1500),
        keepalive_interval: Duration::from_millis(300),
        keepalive_timeout: Duration::from_millis(500),
        ..Limits::default()
    })
    .await;
    ledger.define_service("svc").await;
    ledger.register_probe("p1", &key(1)).await;

    // A live subscriber that receives nothing for twice the idle timeout.
    let size = ledger.tree_size();
    let mut subscription = ledger
        .log()
        .await
        .subscribe(pb::SubscribeRequest { start: size })
        .await
        .unwrap()
        .into_inner();

    // Connects and says nothing (not even the HTTP/2 preface): dropped after ~1.5 s.
    let mut silent = TcpStream::connect(host_port(&ledger.address))
        .await
        .unwrap();
    let (_, elapsed) = read_until_closed(&mut silent, Duration::from_secs(10)).await;
    assert!(
        elapsed >= Duration::from_millis(1300) && elapsed < Duration::from_secs(5),
        "a silent client is dropped after the idle timeout, not {elapsed:?}"
    );

    // Sends the preface and then goes silent, ignoring pings: dropped as well.
    let mut preface_only = TcpStream::connect(host_port(&ledger.address))
        .await
        .unwrap();
    preface_only
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let (_, elapsed) = read_until_closed(&mut preface_only, Duration::from_secs(10)).await;
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");

    tokio::time::sleep(Duration::from_secs(1)).await;
    let acks = ledger
        .submit(vec![observation(&key(1), "p1", "svc", 1, T0, Status::Up)])
        .await;
    assert!(accepted(&acks[0]));
    let entry = tokio::time::timeout(Duration::from_secs(5), subscription.message())
        .await
        .expect("the idle subscriber is still connected")
        .expect("no error")
        .expect("an entry");
    assert_eq!(entry.index, size);
}

#[tokio::test]
async fn slow_loris_and_idle_http_clients_are_dropped_after_the_header_timeout() {
    let ledger = TestLedger::start_with_limits(Limits {
        http_header_timeout: Duration::from_secs(1),
        ..Limits::default()
    })
    .await;
    let address = host_port(&ledger.http_address).to_owned();

    // Slow loris: a header byte every 200 ms never completes the head in time.
    let mut slow = TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let trickle = async {
        for _ in 0..50 {
            if slow.write_all(b"X").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(4), trickle).await;
    let (received, _) = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    let elapsed = started.elapsed();
    assert!(
        !String::from_utf8_lossy(&received).contains("200 OK"),
        "the slow request was never served"
    );
    assert!(elapsed < Duration::from_secs(6), "{elapsed:?}");

    // A kept-alive connection that sends no next request is closed after the timeout too.
    let mut idle = TcpStream::connect(&address).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let (received, elapsed) = read_until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(String::from_utf8_lossy(&received).starts_with("HTTP/1.1 200"));
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );

    // Meanwhile, a normal client is served.
    assert_eq!(ledger.http_get("/healthz").await.status, 200);
}
