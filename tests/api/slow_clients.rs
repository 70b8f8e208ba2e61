//! Slow and idle clients (issue 18): connections that send half a request
//! header and then nothing must neither starve other clients nor the
//! docker runner. The connector runs under the packaged unit's descriptor
//! limit, and its warden sheds what never delivers a request.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::support::app::{poll_until, AppOptions, TestApp};
use crate::support::docker::docker;
use crate::support::figures::record_figures;

/// What a slow client sends before it falls silent: a request line and the
/// start of a header, never the blank line that ends the head.
const HALF_REQUEST: &[u8] = b"GET /service/web/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";

/// The connections the flood holds.
const FLOOD: usize = 5_000;

/// Source addresses the flood spreads over (127.0.0.2 on), each under the
/// default cap of 256 connections per address, so that the connector
/// really holds all of them until the header timeout.
const FLOOD_SOURCES: usize = 20;

/// The most connections the flood opens per 50 ms pass: 2,000 a second,
/// twice what holding 5,000 against a 5 s header timeout takes. Faster, on
/// the two cores of the test machine, it would out-run the connector's
/// accepting and fill the kernel's accept queue (1,024), which then drops
/// every new client's SYN for a second: a connection-rate flood, which is a
/// firewall's to hold (docs), not a slow client.
const OPENS_PER_PASS: usize = 100;

/// The `LimitNOFILE=` of the packaged unit.
fn unit_open_file_limit() -> u64 {
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/docker-connector.service"),
    )
    .unwrap();
    unit.lines()
        .find_map(|line| line.trim().strip_prefix("LimitNOFILE="))
        .expect("the unit sets LimitNOFILE=")
        .parse()
        .expect("LimitNOFILE= is a number")
}

/// Raises this process's soft descriptor limit to its hard one (the flood
/// needs 5,000 and more); returns the hard limit, the most a child can be
/// given without privileges.
fn raise_own_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write `limit`, which
    // lives across both calls.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    limit.rlim_max
}

/// The unit's limit, or this host's hard limit where that is lower (an
/// unprivileged process cannot raise it, nor can root in a container
/// without CAP_SYS_RESOURCE).
fn unit_limit_on_this_host() -> (u64, u64) {
    let unit = unit_open_file_limit();
    let hard = raise_own_open_file_limit();
    (unit, unit.min(hard))
}

/// A connection from `source` that sent [`HALF_REQUEST`].
async fn half_request(port: u16, source: Ipv4Addr) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    let connect = socket.connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    let mut stream = tokio::time::timeout(Duration::from_secs(2), connect)
        .await
        .map_err(|_| std::io::Error::from(ErrorKind::TimedOut))??;
    stream.write_all(HALF_REQUEST).await?;
    Ok(stream)
}

/// Whether the connector has closed `stream` (end of file or a reset).
fn closed(stream: &tokio::net::TcpStream) -> bool {
    let mut buffer = [0u8; 256];
    match stream.try_read(&mut buffer) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    }
}

/// What the flood saw.
#[derive(Debug, Default)]
struct FloodReport {
    opened: usize,
    closed_by_connector: usize,
    connect_failures: usize,
}

/// Holds [`FLOOD`] half-sent requests open until `stop`, re-opening each
/// one the connector closes, at most [`OPENS_PER_PASS`] every 50 ms; `held`
/// says how many are open.
async fn flood(port: u16, held: Arc<AtomicUsize>, stop: Arc<AtomicBool>) -> FloodReport {
    let mut report = FloodReport::default();
    let mut slots: Vec<Option<tokio::net::TcpStream>> = (0..FLOOD).map(|_| None).collect();
    while !stop.load(Ordering::Relaxed) {
        let mut opens = 0;
        for (i, slot) in slots.iter_mut().enumerate() {
            if let Some(stream) = slot {
                if !closed(stream) {
                    continue;
                }
                report.closed_by_connector += 1;
                *slot = None;
                held.fetch_sub(1, Ordering::Relaxed);
            }
            if opens == OPENS_PER_PASS {
                continue;
            }
            opens += 1;
            let source = Ipv4Addr::new(127, 0, 0, 2 + u8::try_from(i % FLOOD_SOURCES).unwrap());
            match half_request(port, source).await {
                Ok(stream) => {
                    *slot = Some(stream);
                    report.opened += 1;
                    held.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => report.connect_failures += 1,
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    report
}

/// One `GET path` on a new connection, read to its end: the status code
/// and the body, or what went wrong.
fn get_on_new_connection(port: u16, path: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|e| e.to_string())?;
    parse_answer(&answer)
}

/// The status code and body of one HTTP/1.1 answer.
fn parse_answer(answer: &[u8]) -> Result<(u16, String), String> {
    let text = String::from_utf8_lossy(answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status line in {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Reads one answer with a `Content-Length` from a kept-alive connection:
/// its status code and its head, lowercased.
fn read_kept_alive_answer(stream: &mut TcpStream) -> Result<(u16, String), String> {
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(0) => {
                return Err(format!(
                    "closed after {:?}",
                    String::from_utf8_lossy(&answer)
                ))
            }
            Ok(_) => answer.push(byte[0]),
            Err(e) => return Err(e.to_string()),
        }
    }
    let head = String::from_utf8_lossy(&answer).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("no content-length in {head:?}"))?;
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).map_err(|e| e.to_string())?;
    answer.extend(body);
    Ok((parse_answer(&answer)?.0, head))
}

/// The connector's resident memory in KiB and its open descriptors.
fn rss_and_descriptors(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| dir.count())
        .unwrap_or(0);
    (rss, fds)
}

/// A sample of one metric series from `/metrics`.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_half_sent_requests_starve_neither_status_polls_nor_healing() {
    let (unit_limit, limit) = unit_limit_on_this_host();
    let app = TestApp::spawn_with(AppOptions::new().open_file_limit(limit)).await;
    app.create_service("web", json!({})).await;
    let reply = app.scale("web", json!(2)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let port = app.port;

    let held = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let flooding = tokio::spawn(flood(port, held.clone(), stop.clone()));
    let filling = Instant::now();
    // Filled once the connector holds them all, not just this side.
    let pid = app.pid();
    let filled = poll_until(Duration::from_secs(30), || async {
        let (_, fds) = rss_and_descriptors(pid);
        (fds >= FLOOD, fds)
    })
    .await;
    assert!(
        filled >= FLOOD,
        "the connector holds only {filled} descriptors after 30 s"
    );
    let fill_time = filling.elapsed();
    let (rss_held, fds_held) = rss_and_descriptors(app.pid());

    // A fresh connection for every poll, as the autoscaler makes: the
    // harder case, since each must be accepted among the flood.
    let polling = Arc::new(AtomicBool::new(true));
    let poller = {
        let polling = polling.clone();
        std::thread::spawn(move || {
            let mut polls: Vec<(Duration, Result<u16, String>)> = Vec::new();
            let started = Instant::now();
            let mut next = started;
            while polling.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let answer = get_on_new_connection(port, "/service/web/status");
                polls.push((sent.elapsed(), answer.map(|(status, _)| status)));
                next += Duration::from_millis(100);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            polls
        })
    };

    tokio::time::sleep(Duration::from_secs(5)).await;
    let victim = app.running("web")[0].clone();
    let killed = Instant::now();
    docker(&["kill", &victim]);
    let running = poll_until(Duration::from_secs(5), || async {
        let running = app.running("web");
        (running.len() == 2 && !running.contains(&victim), running)
    })
    .await;
    let heal_time = killed.elapsed();
    assert!(
        running.len() == 2 && !running.contains(&victim),
        "the killed container was not replaced within 5 s under the flood: {running:?}\n{}",
        app.log()
    );

    // The rest of the 20 s, sampling the connector's memory and descriptors.
    let mut most_fds = fds_held;
    let mut most_rss = rss_held;
    while filling.elapsed() < fill_time + Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (rss, fds) = rss_and_descriptors(app.pid());
        most_fds = most_fds.max(fds);
        most_rss = most_rss.max(rss);
    }
    polling.store(false, Ordering::Relaxed);
    let polls = tokio::task::spawn_blocking(move || poller.join().unwrap())
        .await
        .unwrap();
    let held_at_end = held.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let report = flooding.await.unwrap();

    let metrics = get_on_new_connection(port, "/metrics").unwrap().1;
    let shed = metric(
        &metrics,
        r#"docker_connector_connections_shed_total{reason="header_timeout"}"#,
    );

    let failures: Vec<_> = polls
        .iter()
        .filter(|(took, answer)| *took > Duration::from_millis(100) || answer != &Ok(200))
        .collect();
    let mut latencies: Vec<Duration> = polls.iter().map(|(took, _)| *took).collect();
    latencies.sort();
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    let max = *latencies.last().unwrap();
    let figures = [
        (
            "descriptor limit (unit's LimitNOFILE, this host's hard limit)",
            format!("{limit} ({unit_limit}, {})", raise_own_open_file_limit()),
        ),
        (
            "half-sent requests held",
            format!("{FLOOD} from {FLOOD_SOURCES} addresses, open after {fill_time:.1?}; {held_at_end} open at the end"),
        ),
        (
            "flood over 20 s",
            format!(
                "{} opened, {} closed by the connector ({shed} header timeouts counted), {} connects failed",
                report.opened, report.closed_by_connector, report.connect_failures
            ),
        ),
        (
            "connector with the flood held",
            format!(
                "RSS {} MiB, {fds_held} descriptors; most seen {} MiB, {most_fds} descriptors",
                rss_held / 1024,
                most_rss / 1024
            ),
        ),
        (
            "status polls on fresh connections, every 100 ms",
            format!(
                "{} polls, max {max:.1?}, p99 {p99:.1?}, {} over 100 ms or not 200",
                polls.len(),
                failures.len()
            ),
        ),
        ("killed container replaced after", format!("{heal_time:.2?}")),
    ];
    record_figures("slow_clients", &figures);
    assert!(
        failures.is_empty(),
        "{} of {} polls failed or took over 100 ms: {failures:?}\nfigures: {figures:#?}",
        failures.len(),
        polls.len()
    );
    assert!(polls.len() >= 150, "only {} polls", polls.len());
    assert!(
        shed >= FLOOD as f64,
        "the connector shed {shed} half-sent requests, not the whole flood: {figures:#?}"
    );
}

#[tokio::test]
async fn a_half_sent_request_is_closed_after_the_header_timeout_and_a_waiting_client_is_not() {
    raise_own_open_file_limit();
    let app = TestApp::spawn_with(AppOptions::new().env("ROCKET_HEADER_TIMEOUT", "2")).await;
    app.create_service("web", json!({})).await;
    let port = app.port;

    let waiter = std::thread::spawn(move || -> Result<Vec<(u16, Duration)>, String> {
        let mut stream =
            TcpStream::connect((Ipv4Addr::LOCALHOST, port)).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let mut answers = Vec::new();
        let request = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        stream
            .write_all(request("/service/web/status").as_bytes())
            .map_err(|e| e.to_string())?;
        let sent = Instant::now();
        let (status, head) = read_kept_alive_answer(&mut stream)?;
        answers.push((status, sent.elapsed()));
        let index = head
            .lines()
            .find_map(|line| line.strip_prefix("x-connector-index:"))
            .map(str::trim)
            .ok_or_else(|| format!("no x-connector-index in {head:?}"))?
            .to_owned();
        // Nothing changes web: the blocking status answers when its wait
        // runs out, 10 s on, long past the header timeout.
        stream
            .write_all(request(&format!("/service/web/status?index={index}&wait=10s")).as_bytes())
            .map_err(|e| e.to_string())?;
        let sent = Instant::now();
        let (status, _) = read_kept_alive_answer(&mut stream)?;
        answers.push((status, sent.elapsed()));
        // Idle on the kept-alive connection past the timeout again.
        std::thread::sleep(Duration::from_secs(4));
        stream
            .write_all(request("/service/web/status").as_bytes())
            .map_err(|e| e.to_string())?;
        let sent = Instant::now();
        let (status, _) = read_kept_alive_answer(&mut stream)?;
        answers.push((status, sent.elapsed()));
        Ok(answers)
    });

    let slow = tokio::task::spawn_blocking(move || {
        let connected = Instant::now();
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        stream.write_all(HALF_REQUEST).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(8)))
            .unwrap();
        let mut buffer = [0u8; 256];
        let outcome = match stream.read(&mut buffer) {
            Ok(0) => Ok(()),
            Ok(n) => Err(format!(
                "an answer: {:?}",
                String::from_utf8_lossy(&buffer[..n])
            )),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(()),
            Err(e) => Err(e.to_string()),
        };
        (outcome, connected.elapsed())
    })
    .await
    .unwrap();
    let (outcome, closed_after) = slow;
    assert_eq!(outcome, Ok(()), "the half-sent request was not closed");
    assert!(
        (Duration::from_secs(2)..Duration::from_secs(4)).contains(&closed_after),
        "closed after {closed_after:?}, not between the 2 s header timeout and 4 s"
    );

    let answers = tokio::task::spawn_blocking(move || waiter.join().unwrap())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("the kept-alive client was cut off: {e}\n{}", app.log()));
    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    assert_eq!(statuses, [200, 200, 200], "{answers:?}");
    assert!(
        answers[1].1 >= Duration::from_secs(9),
        "the blocking status answered after {:?}, not after its wait",
        answers[1].1
    );
    record_figures(
        "slow_clients_timeout",
        &[(
            "half-sent request closed (header_timeout 2 s) after",
            format!("{closed_after:.2?}"),
        )],
    );
}

#[tokio::test]
async fn one_address_is_cut_down_to_its_connection_cap_while_a_real_client_is_answered() {
    raise_own_open_file_limit();
    let app = TestApp::spawn_with(
        AppOptions::new()
            .env("ROCKET_MAX_CONNECTIONS_PER_ADDRESS", "50")
            // Long enough that only the cap closes anything here.
            .env("ROCKET_HEADER_TIMEOUT", "60"),
    )
    .await;
    app.create_service("web", json!({})).await;

    let mut idle = Vec::new();
    for _ in 0..200 {
        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, app.port)).unwrap();
        stream.set_nonblocking(true).unwrap();
        idle.push(stream);
    }
    let is_closed = |stream: &TcpStream| {
        let mut buffer = [0u8; 16];
        match (&*stream).read(&mut buffer) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != ErrorKind::WouldBlock,
        }
    };
    let started = Instant::now();
    let mut closed = vec![false; idle.len()];
    let open = poll_until(Duration::from_secs(5), || {
        for (stream, closed) in idle.iter().zip(closed.iter_mut()) {
            *closed = *closed || is_closed(stream);
        }
        let open = closed.iter().filter(|c| !**c).count();
        async move { (open <= 50, open) }
    })
    .await;
    let took = started.elapsed();
    let reply = app.status("web").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        (40..=50).contains(&open),
        "{open} of 200 idle connections still open after {took:?}, not about 50"
    );
    // And it stays there: nothing more is shed once under the cap.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (stream, closed) in idle.iter().zip(closed.iter_mut()) {
        *closed = *closed || is_closed(stream);
    }
    let still = closed.iter().filter(|c| !**c).count();
    assert!(still >= 40, "{still} left open, not about 50");
    let metrics = app.get("/metrics").await;
    let text = metrics.body.as_str().unwrap_or_default().to_owned();
    let shed = metric(
        &text,
        r#"docker_connector_connections_shed_total{reason="per_address"}"#,
    );
    assert!(shed >= 150.0, "per_address counted {shed}:\n{text}");
}
