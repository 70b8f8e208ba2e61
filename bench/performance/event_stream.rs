//! A client of the connector's event stream (`GET /events`, issue 17): one
//! request on a connection of its own, whose endless chunked body is read
//! event by event, each stamped with the wall-clock time it was read, so
//! that it can be set against the engine's own time of a docker event.
//!
//! Beside `http`, whose client reads bodies of a known length; the head of
//! the answer is read by the same code.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::http::{connect, read_head, read_line, request_bytes};

/// One event as the stream sent it.
#[derive(Clone)]
pub struct StreamEvent {
    pub id: Option<u64>,
    /// Its `event:` field, such as `container.died`.
    pub kind: String,
    /// Its `data:` field, a JSON object; `Null` if it was not JSON.
    pub data: Value,
    /// When the blank line that ends it was read.
    pub read_at: SystemTime,
}

impl StreamEvent {
    /// The container a `container.*` event is about.
    pub fn container(&self) -> Option<&str> {
        self.data.get("id")?.as_str()
    }
}

/// A stream asked for whose answer has not been read yet, so that many
/// can be asked for before any answer is awaited.
pub struct PendingStream {
    reader: BufReader<TcpStream>,
    path: String,
}

impl PendingStream {
    /// Connects and sends `GET path`; reads will fail after `timeout`.
    pub fn request(port: u16, path: &str, timeout: Duration) -> io::Result<PendingStream> {
        let mut socket = connect(port, timeout)?;
        socket.write_all(&request_bytes(port, "GET", path, None))?;
        Ok(PendingStream {
            reader: BufReader::new(socket),
            path: path.to_owned(),
        })
    }

    /// Reads the answer's head: a 200 with a chunked body, or an error
    /// saying what came instead.
    pub fn read_head(mut self) -> io::Result<EventStream> {
        let mut line = Vec::new();
        let head = read_head(&mut self.reader, &mut line)?;
        if head.status != 200 || !head.chunked {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "GET {} answered {}{}",
                    self.path,
                    head.status,
                    if head.chunked { "" } else { ", not chunked" }
                ),
            ));
        }
        let socket = self.reader.get_ref().try_clone()?;
        Ok(EventStream {
            body: BufReader::new(ChunkedBody {
                inner: self.reader,
                left_in_chunk: 0,
                after_chunk: false,
                line: Vec::new(),
            }),
            socket,
            line,
        })
    }
}

/// An open event stream, read one event at a time.
pub struct EventStream {
    body: BufReader<ChunkedBody<BufReader<TcpStream>>>,
    /// The same socket, to change its timeout or shut it down.
    socket: TcpStream,
    line: Vec<u8>,
}

impl EventStream {
    /// Asks for `path` and waits for the answer's head.
    pub fn open(port: u16, path: &str, timeout: Duration) -> io::Result<EventStream> {
        PendingStream::request(port, path, timeout)?.read_head()
    }

    /// How long a read may wait; `None` for ever.
    pub fn set_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.socket.set_read_timeout(timeout)
    }

    /// A handle on the socket by which another thread can end a read that
    /// waits for the next event (`shutdown`).
    pub fn socket(&self) -> io::Result<TcpStream> {
        self.socket.try_clone()
    }

    /// Reads up to the end of the next event, skipping comments (the
    /// keep-alive); an error when the stream ends or the timeout passes.
    pub fn next_event(&mut self) -> io::Result<StreamEvent> {
        let (mut id, mut kind, mut data) = (None, String::new(), String::new());
        loop {
            let line = read_line(&mut self.body, &mut self.line)?;
            if line.is_empty() {
                if id.is_none() && kind.is_empty() && data.is_empty() {
                    // The blank line after a comment.
                    continue;
                }
                return Ok(StreamEvent {
                    id,
                    kind,
                    data: serde_json::from_str(&data).unwrap_or(Value::Null),
                    read_at: SystemTime::now(),
                });
            }
            let line = String::from_utf8_lossy(line);
            let (field, value) = line.split_once(':').unwrap_or((&line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => id = value.parse().ok(),
                "event" => value.clone_into(&mut kind),
                "data" => {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(value);
                }
                // A comment (empty field) or a field the bench has no use for.
                _ => {}
            }
        }
    }

    /// Ends the stream from this side.
    pub fn close(&self) {
        let _ = self.socket.shutdown(Shutdown::Both);
    }
}

/// The data of an HTTP/1.1 chunked body, without its framing.
struct ChunkedBody<R> {
    inner: R,
    left_in_chunk: usize,
    /// A chunk's data has been read but not the line end after it. It is
    /// read only with the next chunk's size, so that a read never waits for
    /// more than the data it returns.
    after_chunk: bool,
    line: Vec<u8>,
}

impl<R: BufRead> Read for ChunkedBody<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left_in_chunk == 0 {
            if self.after_chunk {
                read_line(&mut self.inner, &mut self.line)?;
                self.after_chunk = false;
            }
            let size_line = read_line(&mut self.inner, &mut self.line)?;
            let size = size_line.split(|&byte| byte == b';').next().unwrap_or(b"");
            self.left_in_chunk = std::str::from_utf8(size)
                .ok()
                .and_then(|size| usize::from_str_radix(size.trim(), 16).ok())
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("chunk size {:?}", String::from_utf8_lossy(size_line)),
                    )
                })?;
            if self.left_in_chunk == 0 {
                // The last chunk: the server ended the stream.
                return Ok(0);
            }
        }
        let wanted = buf.len().min(self.left_in_chunk);
        let read = self.inner.read(&mut buf[..wanted])?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.left_in_chunk -= read;
        self.after_chunk = self.left_in_chunk == 0;
        Ok(read)
    }
}
