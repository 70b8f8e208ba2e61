//! A minimal HTTP/1.1 client over kept-alive connections: every request
//! the bench makes to the connector goes through it.
//!
//! Why not reqwest, a dev-dependency already: the status rows measure the
//! connector's own cost per request (p50 in tens of microseconds, tens of
//! thousands of requests a second over 64 connections) on a 2-core machine
//! where the client shares the CPUs with the server. A client library's
//! pool, futures and header handling would spend some of those CPUs and add
//! to every latency, so the figures would say less about the connector and
//! would stop being comparable with the README's earlier runs. This client
//! writes prepared bytes and reads a status line, headers and a
//! Content-Length body: nothing the connector does not need.

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// One answer: its status code and its whole body.
pub struct HttpAnswer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl HttpAnswer {
    pub fn text(&self) -> String {
        format!("{} {}", self.status, String::from_utf8_lossy(&self.body))
    }

    pub fn running_resources(&self) -> Option<u64> {
        serde_json::from_slice::<Value>(&self.body)
            .ok()?
            .get("running_resources")?
            .as_u64()
    }
}

/// The bytes of one request. `Host` names the address, as the connector
/// refuses DNS names without a token.
pub fn request_bytes(port: u16, method: &str, path: &str, body: Option<&str>) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    if let Some(body) = body {
        let _ = write!(
            head,
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default().as_bytes());
    bytes
}

/// One kept-alive connection; `line` is reused for every header line read.
pub struct HttpConnection {
    reader: BufReader<TcpStream>,
    pub line: Vec<u8>,
}

impl HttpConnection {
    pub fn open(port: u16, timeout: Duration) -> io::Result<HttpConnection> {
        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        Ok(HttpConnection {
            reader: BufReader::new(stream),
            line: Vec::new(),
        })
    }

    /// Sends one request and reads its whole answer, leaving the connection
    /// ready for the next.
    pub fn exchange(&mut self, request: &[u8]) -> io::Result<HttpAnswer> {
        self.reader.get_mut().write_all(request)?;
        let status = self.read_status_line()?;
        let length = self.read_headers()?;
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok(HttpAnswer { status, body })
    }

    fn read_line(&mut self) -> io::Result<&[u8]> {
        self.line.clear();
        if self.reader.read_until(b'\n', &mut self.line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(self.line.trim_ascii_end())
    }

    fn read_status_line(&mut self) -> io::Result<u16> {
        let line = self.read_line()?;
        std::str::from_utf8(line)
            .ok()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| {
                invalid_answer(format!("status line {:?}", String::from_utf8_lossy(line)))
            })
    }

    /// Reads the header lines up to the blank one; returns the body's length.
    fn read_headers(&mut self) -> io::Result<usize> {
        let mut length = 0;
        loop {
            let line = self.read_line()?;
            if line.is_empty() {
                return Ok(length);
            }
            let Some(colon) = line.iter().position(|&byte| byte == b':') else {
                return Err(invalid_answer(format!(
                    "header {:?}",
                    String::from_utf8_lossy(line)
                )));
            };
            let (name, value) = (&line[..colon], &line[colon + 1..]);
            if name.eq_ignore_ascii_case(b"content-length") {
                length = std::str::from_utf8(value)
                    .ok()
                    .and_then(|value| value.trim().parse().ok())
                    .ok_or_else(|| invalid_answer("Content-Length".to_owned()))?;
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                // The connector's answers are small JSON with a known size.
                return Err(invalid_answer("unexpected Transfer-Encoding".to_owned()));
            }
        }
    }
}

fn invalid_answer(what: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed answer: {what}"),
    )
}
