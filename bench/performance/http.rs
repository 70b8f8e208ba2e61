//! A minimal HTTP/1.1 client over kept-alive connections: every request
//! the bench makes to the connector goes through it, but for the event
//! stream's, whose endless body `event_stream` reads after the same head.
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
//!
//! The same client speaks TLS to a connector started with `tls.*` (an
//! [`Endpoint::tls`]): rustls, which Rocket's listener uses too, wraps the
//! socket, and nothing else changes, so the TLS row differs from the plain
//! one by the encryption alone.

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde_json::Value;

/// One answer: its status code, its whole body, and the index a status
/// answer carries.
pub struct HttpAnswer {
    pub status: u16,
    pub body: Vec<u8>,
    /// Its `X-Connector-Index` header (issue 17): what a blocking status
    /// request names to wait for the next change.
    pub connector_index: Option<u64>,
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

/// A connection to the connector on 127.0.0.1, without Nagle's delay,
/// whose reads fail after `timeout`.
pub fn connect(port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    Ok(stream)
}

/// Where a connector listens on 127.0.0.1, and whether over TLS.
#[derive(Clone)]
pub struct Endpoint {
    pub port: u16,
    /// The client's TLS settings; `None` for plain HTTP.
    tls: Option<Arc<ClientConfig>>,
}

impl Endpoint {
    pub fn plain(port: u16) -> Endpoint {
        Endpoint { port, tls: None }
    }

    /// TLS to `port`, trusting the CA certificate in `ca_pem` alone and
    /// checking the server's for the address 127.0.0.1.
    ///
    /// # Panics
    ///
    /// If `ca_pem` holds no certificate rustls accepts.
    pub fn tls(port: u16, ca_pem: &Path) -> Endpoint {
        let mut roots = RootCertStore::empty();
        for certificate in CertificateDer::pem_file_iter(ca_pem)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", ca_pem.display()))
        {
            let certificate = certificate
                .unwrap_or_else(|e| panic!("a bad certificate in {}: {e}", ca_pem.display()));
            roots
                .add(certificate)
                .unwrap_or_else(|e| panic!("{} is no CA: {e}", ca_pem.display()));
        }
        // The process's default provider: ring, the one crypto feature in
        // the tree, as on Rocket's side.
        let config = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Endpoint {
            port,
            tls: Some(Arc::new(config)),
        }
    }
}

/// A socket to the connector, in clear or through TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    /// Connects to `endpoint` and, for TLS, completes the handshake, so that
    /// a request timed later does not carry it.
    fn open(endpoint: &Endpoint, timeout: Duration) -> io::Result<Stream> {
        let mut socket = connect(endpoint.port, timeout)?;
        let Some(config) = &endpoint.tls else {
            return Ok(Stream::Plain(socket));
        };
        let server = ServerName::IpAddress(IpAddr::from(Ipv4Addr::LOCALHOST).into());
        let mut tls = ClientConnection::new(config.clone(), server).map_err(io::Error::other)?;
        while tls.is_handshaking() {
            tls.complete_io(&mut socket)?;
        }
        Ok(Stream::Tls(Box::new(StreamOwned::new(tls, socket))))
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(socket) => socket.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(socket) => socket.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(socket) => socket.flush(),
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

/// One kept-alive connection; `line` is reused for every header line read.
pub struct HttpConnection {
    reader: BufReader<Stream>,
    line: Vec<u8>,
}

impl HttpConnection {
    pub fn open(endpoint: &Endpoint, timeout: Duration) -> io::Result<HttpConnection> {
        Ok(HttpConnection {
            reader: BufReader::new(Stream::open(endpoint, timeout)?),
            line: Vec::new(),
        })
    }

    /// Sends one request and reads its whole answer, leaving the connection
    /// ready for the next.
    pub fn exchange(&mut self, request: &[u8]) -> io::Result<HttpAnswer> {
        self.reader.get_mut().write_all(request)?;
        let head = read_head(&mut self.reader, &mut self.line)?;
        if head.chunked {
            // The connector's answers are small JSON with a known size;
            // only its event stream is chunked, and `event_stream` reads it.
            return Err(invalid_answer("unexpected Transfer-Encoding".to_owned()));
        }
        let mut body = vec![0; head.content_length];
        self.reader.read_exact(&mut body)?;
        Ok(HttpAnswer {
            status: head.status,
            body,
            connector_index: head.connector_index,
        })
    }
}

/// What the head of an answer says that the bench reads.
pub struct AnswerHead {
    pub status: u16,
    /// 0 when no Content-Length came.
    pub content_length: usize,
    /// `Transfer-Encoding: chunked`: a body of unknown length, such as an
    /// event stream.
    pub chunked: bool,
    pub connector_index: Option<u64>,
}

/// Reads a status line and the header lines up to the blank one; `line` is
/// a buffer reused for every line.
pub fn read_head(reader: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<AnswerHead> {
    let status = parse_status_line(read_line(reader, line)?)?;
    let mut head = AnswerHead {
        status,
        content_length: 0,
        chunked: false,
        connector_index: None,
    };
    loop {
        let line = read_line(reader, line)?;
        if line.is_empty() {
            return Ok(head);
        }
        let Some(colon) = line.iter().position(|&byte| byte == b':') else {
            return Err(invalid_answer(format!(
                "header {:?}",
                String::from_utf8_lossy(line)
            )));
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            head.content_length = parse_number(value, "Content-Length")?;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            head.chunked = value.eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case(b"x-connector-index") {
            head.connector_index = Some(parse_number(value, "X-Connector-Index")?);
        }
    }
}

/// One line without its line end; an error at the end of the stream.
pub fn read_line<'a>(reader: &mut impl BufRead, line: &'a mut Vec<u8>) -> io::Result<&'a [u8]> {
    line.clear();
    if reader.read_until(b'\n', line)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(line.trim_ascii_end())
}

fn parse_status_line(line: &[u8]) -> io::Result<u16> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid_answer(format!("status line {:?}", String::from_utf8_lossy(line))))
}

fn parse_number<T: std::str::FromStr>(value: &[u8], header: &str) -> io::Result<T> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| invalid_answer(format!("{header} {:?}", String::from_utf8_lossy(value))))
}

pub fn invalid_answer(what: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed answer: {what}"),
    )
}
