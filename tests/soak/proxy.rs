//! A socket proxy in front of the Docker engine: the connector under soak
//! runs with `DOCKER_HOST=unix://<dir>/docker.sock`, this proxy listens
//! there and forwards each connection byte for byte to the real engine
//! socket, so the soak can make the engine unreachable (cut) or unanswering
//! (hung) for the connector alone while the engine keeps running for
//! everyone else.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tokio::net::{UnixListener, UnixStream};
use tokio::runtime::Handle;
use tokio::task::{JoinHandle, JoinSet};

/// The real engine's socket.
const ENGINE: &str = "/var/run/docker.sock";

/// What the proxy does with the connector's docker calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forwards every connection to the engine.
    Forward,
    /// Listens no more (the socket file is gone) and every open connection
    /// is closed: the engine is unreachable.
    Cut,
    /// Accepts connections but forwards nothing and answers nothing: each
    /// docker call waits until its deadline.
    Hung,
}

pub struct EngineProxy {
    path: PathBuf,
    runtime: Handle,
    /// The task that accepts (and owns every connection it accepted, so
    /// aborting it closes them all), if the proxy listens.
    listening: Mutex<Option<JoinHandle<()>>>,
}

impl EngineProxy {
    /// Listens on `path` (forwarding) on the current runtime.
    pub fn start(path: &Path) -> EngineProxy {
        let proxy = EngineProxy {
            path: path.to_owned(),
            runtime: Handle::current(),
            listening: Mutex::new(None),
        };
        proxy.set(Mode::Forward);
        proxy
    }

    /// The `DOCKER_HOST` value that reaches the proxy.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// Switches to `mode`: whatever listened and every connection it
    /// accepted are closed first.
    pub fn set(&self, mode: Mode) {
        let mut listening = self.listening.lock().unwrap();
        if let Some(task) = listening.take() {
            task.abort();
        }
        let _ = std::fs::remove_file(&self.path);
        if mode == Mode::Cut {
            return;
        }
        let _entered = self.runtime.enter();
        let listener = UnixListener::bind(&self.path)
            .unwrap_or_else(|e| panic!("the proxy cannot listen on {}: {e}", self.path.display()));
        *listening = Some(self.runtime.spawn(serve(listener, mode)));
    }
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        if let Some(task) = self.listening.lock().unwrap().take() {
            task.abort();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Accepts on `listener` until aborted; dropping the task drops the
/// connections it holds.
async fn serve(listener: UnixListener, mode: Mode) {
    let mut forwarding = JoinSet::new();
    let mut held = Vec::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                match mode {
                    Mode::Forward => {
                        forwarding.spawn(forward(client));
                    }
                    // Held open, never read: the caller waits.
                    _ => held.push(client),
                }
            }
            Some(_) = forwarding.join_next() => {}
        }
    }
}

async fn forward(mut client: UnixStream) {
    let Ok(mut engine) = UnixStream::connect(ENGINE).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
}
