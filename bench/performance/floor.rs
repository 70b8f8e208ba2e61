//! The floor of the status load (issue 21): the bare framework answering
//! the same question. A Rocket program with one route, which answers every
//! `GET /service/<name>/status` with a constant JSON body, the status
//! service's own answer read once from the connector, so that both send the
//! same bytes. It is built into the bench's own binary and runs as a process
//! of its own (the binary started again with [`FLOOR_FLAG`]), on Rocket's
//! default settings, as the connector runs, with logging off.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rocket::http::ContentType;
use rocket::State;

use crate::http::Endpoint;

/// The argument that makes the bench's binary serve the floor:
/// `FLOOR_FLAG PORT BODY_FILE`.
pub const FLOOR_FLAG: &str = "--constant-route";

/// How long the floor may take to listen.
const LISTEN_DEADLINE: Duration = Duration::from_secs(30);

/// The constant answer.
struct Body(String);

#[rocket::get("/service/<_service>/status")]
fn status(_service: &str, body: &State<Body>) -> (ContentType, String) {
    (ContentType::JSON, body.0.clone())
}

/// The child's side: serves the body of the file `args[1]` on port
/// `args[0]` until killed.
pub fn serve(args: &[String]) -> ExitCode {
    let (Some(port), Some(body_file)) = (args.first(), args.get(1)) else {
        eprintln!("usage: {FLOOR_FLAG} PORT BODY_FILE");
        return ExitCode::from(2);
    };
    let port: u16 = port.parse().expect("a port number");
    let body = std::fs::read_to_string(body_file).expect("the body file can be read");
    let config = rocket::Config {
        address: Ipv4Addr::LOCALHOST.into(),
        port,
        log_level: rocket::config::LogLevel::Off,
        cli_colors: false,
        ..rocket::Config::default()
    };
    let server = rocket::custom(config)
        .manage(Body(body))
        .mount("/", rocket::routes![status]);
    match rocket::execute(server.launch()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("the constant route failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The floor's process, killed when dropped.
pub struct Floor {
    child: Child,
    endpoint: Endpoint,
    _body_dir: tempfile::TempDir,
}

impl Floor {
    /// Starts the floor answering `body`, and waits until it listens.
    pub fn start(body: &[u8], log_path: &Path) -> Floor {
        let body_dir = tempfile::tempdir().expect("a temporary directory");
        let body_file: PathBuf = body_dir.path().join("status.json");
        std::fs::write(&body_file, body).expect("the body file can be written");
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .expect("a free port on 127.0.0.1")
            .port();
        let log = std::fs::File::create(log_path).expect("the floor's log can be created");
        let child = Command::new(std::env::current_exe().expect("the bench's own path"))
            .arg(FLOOR_FLAG)
            .arg(port.to_string())
            .arg(&body_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the bench's binary can be started again");
        let mut floor = Floor {
            child,
            endpoint: Endpoint::plain(port),
            _body_dir: body_dir,
        };
        let started = Instant::now();
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if let Ok(Some(exit)) = floor.child.try_wait() {
                panic!("the constant route exited at start ({exit}); see {log_path:?}");
            }
            assert!(
                started.elapsed() < LISTEN_DEADLINE,
                "the constant route did not listen within {LISTEN_DEADLINE:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
        floor
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub fn port(&self) -> u16 {
        self.endpoint.port
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
