//! A client of the connector's event stream (`GET /events`,
//! `text/event-stream`): it reads the body chunk by chunk as it arrives and
//! splits it into events, so a test can wait for the next one with a limit,
//! tell a clean end of the stream from a broken connection, and count the
//! keep-alive comments.
//!
//! Built on reqwest's `Response::chunk`, which needs none of reqwest's
//! optional features. Each stream has a client, and so a connection, of its
//! own: a test that stops reading one stream must not hold up another.
//! [`EventStream::open_narrow`] reads over a connection of its own making
//! instead, whose buffers are as small as the kernel allows.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::app::{Reply, TestApp};

/// One event as the stream sent it.
#[derive(Debug, Clone)]
pub struct Event {
    /// Absent only where the stream means no place in it: a `reset`.
    id: Option<u64>,
    /// The `event:` field: `service.scaled`, `reset`, ...
    pub kind: String,
    pub data: Value,
    /// The event's bytes on the wire, from its first field to the blank
    /// line that ends it.
    pub size: usize,
}

impl Event {
    /// Its id; panics if it has none.
    pub fn id(&self) -> u64 {
        self.id
            .unwrap_or_else(|| panic!("an event without an id: {self:?}"))
    }

    /// The `service` its data names, if any.
    pub fn service(&self) -> Option<&str> {
        self.data["service"].as_str()
    }
}

/// What the stream did next.
#[derive(Debug)]
pub enum Next {
    Event(Event),
    /// The server ended the body cleanly.
    Ended,
    /// The connection failed before the body's end.
    Broken(String),
    /// Nothing but keep-alive comments within the time given.
    Quiet,
}

/// Where a stream's bytes come from.
enum Source {
    /// An HTTP/1.1 response, read by reqwest (which undoes the chunking).
    Response(reqwest::Response),
    /// An HTTP/1.0 exchange over a socket of the test's own: the body is
    /// every byte after the head, until the server closes.
    Socket(tokio::net::TcpStream),
}

impl Source {
    /// The next bytes of the body; `None` at its clean end.
    async fn read(&mut self) -> Result<Option<Vec<u8>>, String> {
        match self {
            Source::Response(response) => match response.chunk().await {
                Ok(chunk) => Ok(chunk.map(|bytes| bytes.to_vec())),
                Err(e) => Err(format!("{e:?}")),
            },
            Source::Socket(socket) => {
                let mut buffer = vec![0; 16 * 1024];
                match socket.read(&mut buffer).await {
                    Ok(0) => Ok(None),
                    Ok(n) => {
                        buffer.truncate(n);
                        Ok(Some(buffer))
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
        }
    }
}

/// An open event stream.
pub struct EventStream {
    source: Source,
    /// Bytes received but not yet a whole line.
    pending: Vec<u8>,
    /// The fields of the event whose lines are being read.
    partial: Partial,
    /// When each keep-alive comment arrived.
    keep_alives: Vec<Instant>,
    finished: bool,
}

/// The fields of an event read so far: an event ends at a blank line.
#[derive(Default)]
struct Partial {
    id: Option<String>,
    kind: Option<String>,
    data: Vec<String>,
    /// Its lines so far, for messages.
    text: String,
    size: usize,
}

impl EventStream {
    /// `GET path` (`/events?service=web`) with `headers` (and the app's
    /// token, if it has one), expecting a stream; panics if it answers
    /// anything else.
    pub async fn open(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> EventStream {
        match Self::try_open(app, path, headers).await {
            Ok(stream) => stream,
            Err(reply) => panic!("GET {path} did not open a stream: {reply:?}"),
        }
    }

    /// Like [`EventStream::open`], but an answer that is not a 200 event
    /// stream is returned, its body read as JSON, for tests of refusals.
    pub async fn try_open(
        app: &TestApp,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<EventStream, Reply> {
        let mut request = reqwest::Client::new()
            .get(app.url(path))
            .header("accept", "text/event-stream");
        if let Some(token) = app.token() {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("the connector answers");
        let is_stream = response
            .headers()
            .get("content-type")
            .and_then(|t| t.to_str().ok())
            .is_some_and(|t| t.starts_with("text/event-stream"));
        if response.status() == 200 && is_stream {
            return Ok(EventStream::over(Source::Response(response), Vec::new()));
        }
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap_or_default();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Err(Reply {
            status,
            headers,
            body,
        })
    }

    /// `GET path` over a connection whose receive buffer and segment size
    /// are the smallest the kernel takes, so that the server's send buffer
    /// stays small too (Linux sizes it by the segments the peer accepts):
    /// once the test stops reading, the server has to hold the events
    /// after a few hundred kilobytes rather than several megabytes. Over
    /// HTTP/1.0, so the body is not chunked. Panics unless it answers a
    /// 200 event stream.
    pub async fn open_narrow(app: &TestApp, path: &str) -> EventStream {
        let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        socket
            .set_recv_buffer_size(4096)
            .expect("a small receive buffer");
        let segment: libc::c_int = 536;
        // SAFETY: a valid socket and a pointer to an int of the size given.
        let set = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_MAXSEG,
                std::ptr::addr_of!(segment).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(set, 0, "TCP_MAXSEG: {}", std::io::Error::last_os_error());
        let address = ([127, 0, 0, 1], app.port).into();
        let mut stream = socket
            .connect(address)
            .await
            .expect("the connector answers");
        let token = app
            .token()
            .map(|token| format!("Authorization: Bearer {token}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nAccept: text/event-stream\r\n{token}\r\n",
            app.port
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut received = Vec::new();
        let head_end = loop {
            if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut buffer = [0; 4096];
            let n = stream.read(&mut buffer).await.expect("an answer");
            assert!(n > 0, "the connector closed before answering GET {path}");
            received.extend_from_slice(&buffer[..n]);
        };
        let head = String::from_utf8_lossy(&received[..head_end]).to_lowercase();
        assert!(
            head.starts_with("http/1.0 200") || head.starts_with("http/1.1 200"),
            "GET {path} did not open a stream: {head}"
        );
        assert!(
            head.contains("content-type: text/event-stream"),
            "GET {path} did not open a stream: {head}"
        );
        let body = received.split_off(head_end);
        EventStream::over(Source::Socket(stream), body)
    }

    fn over(source: Source, pending: Vec<u8>) -> EventStream {
        EventStream {
            source,
            pending,
            partial: Partial::default(),
            keep_alives: Vec::new(),
            finished: false,
        }
    }

    /// When each keep-alive comment (a line starting with `:`) arrived.
    pub fn keep_alives(&self) -> &[Instant] {
        &self.keep_alives
    }

    /// The next event, waiting at most `within` for it.
    pub async fn next(&mut self, within: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(event) = self.take_event() {
                return Next::Event(event);
            }
            if self.finished {
                return Next::Ended;
            }
            match tokio::time::timeout_at(deadline, self.source.read()).await {
                Err(_) => return Next::Quiet,
                Ok(Ok(Some(bytes))) => self.pending.extend_from_slice(&bytes),
                Ok(Ok(None)) => self.finished = true,
                Ok(Err(e)) => return Next::Broken(e),
            }
        }
    }

    /// The next event; panics, saying `what` was awaited, if the stream
    /// ends, breaks or stays quiet for `within`.
    pub async fn expect_event(&mut self, within: Duration, what: &str) -> Event {
        match self.next(within).await {
            Next::Event(event) => event,
            Next::Broken(why) => panic!("waiting for {what}: the connection broke: {why}"),
            other => panic!("waiting for {what}: {other:?} after up to {within:?}"),
        }
    }

    /// Events until (and with) the first that `done` accepts; panics,
    /// naming `what` and the events seen, if none does within `within`.
    pub async fn until(
        &mut self,
        within: Duration,
        what: &str,
        done: impl Fn(&Event) -> bool,
    ) -> Vec<Event> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Next::Event(event) => {
                    let last = done(&event);
                    seen.push(event);
                    if last {
                        return seen;
                    }
                }
                other => panic!(
                    "waiting for {what}: {other:?} within {within:?}; seen meanwhile: {:#?}",
                    summary(&seen)
                ),
            }
        }
    }

    /// Reads the whole lines received until one ends an event, which it
    /// returns. Comment lines are keep-alives; a blank line ends an event
    /// only if the event has a field.
    fn take_event(&mut self) -> Option<Event> {
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let size = end + 1;
            let line: Vec<u8> = self.pending.drain(..size).collect();
            let line = String::from_utf8(line).expect("an event stream is UTF-8");
            let line = line.trim_end_matches('\n').trim_end_matches('\r');
            if line.starts_with(':') {
                self.keep_alives.push(Instant::now());
                continue;
            }
            self.partial.size += size;
            if !line.is_empty() {
                self.partial.text.push_str(line);
                self.partial.text.push('\n');
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
                match field {
                    "id" => self.partial.id = Some(value),
                    "event" => self.partial.kind = Some(value),
                    "data" => self.partial.data.push(value),
                    // A client ignores fields it does not know, such as retry.
                    _ => {}
                }
                continue;
            }
            let partial = std::mem::take(&mut self.partial);
            if partial.id.is_none() && partial.kind.is_none() && partial.data.is_empty() {
                continue;
            }
            let text = partial.text;
            assert_eq!(
                partial.data.len(),
                1,
                "an event's data is one line of JSON: {text:?}"
            );
            return Some(Event {
                id: partial.id.map(|id| {
                    id.parse()
                        .unwrap_or_else(|_| panic!("id {id:?} is not an integer: {text:?}"))
                }),
                kind: partial
                    .kind
                    .unwrap_or_else(|| panic!("an event without a type: {text:?}")),
                data: serde_json::from_str(&partial.data[0])
                    .unwrap_or_else(|e| panic!("data is not JSON ({e}): {text:?}")),
                size: partial.size,
            });
        }
        None
    }
}

/// `id type service` of each event, for messages.
pub fn summary(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| format!("{:?} {} {}", e.id, e.kind, e.data))
        .collect()
}
