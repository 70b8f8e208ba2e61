//! The `docker-connector` binary: flags, logging, launch.

use std::path::PathBuf;
use std::process::ExitCode;

use docker_connector::{config, logging, memory};

const USAGE: &str = "\
Usage: docker-connector [--config PATH]

Keeps N containers of each defined service running, driven over HTTP.

Options:
  --config PATH   read settings from PATH instead of Rocket.toml (or $ROCKET_CONFIG)
  --version       print the version and exit
  --help          print this help and exit

Every setting can also be given as ROCKET_<KEY>, e.g. ROCKET_PORT=7051.";

enum Invocation {
    Run { config_file: Option<PathBuf> },
    Exit(ExitCode),
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Invocation {
    let mut config_file = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--version" | "-V" => {
                println!("docker-connector {}", env!("CARGO_PKG_VERSION"));
                return Invocation::Exit(ExitCode::SUCCESS);
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                return Invocation::Exit(ExitCode::SUCCESS);
            }
            "--config" => match args.next() {
                Some(path) => config_file = Some(PathBuf::from(path)),
                None => return usage_error("--config needs a path"),
            },
            other => match other.strip_prefix("--config=") {
                Some(path) => config_file = Some(PathBuf::from(path)),
                None => return usage_error(&format!("unknown argument {other:?}")),
            },
        }
    }
    Invocation::Run { config_file }
}

fn usage_error(message: &str) -> Invocation {
    eprintln!("docker-connector: {message}\n\n{USAGE}");
    Invocation::Exit(ExitCode::from(2))
}

/// Raises the soft limit on open files to the hard one (at most 2^20):
/// every client watching `GET /events` or a blocking status holds a
/// connection, and the usual soft limit of 1024 would refuse the
/// thousand-and-first. The hard limit is what the administrator allows
/// (systemd's default is 524288); Go's runtime does the same at start.
fn raise_open_file_limit() {
    const CEILING: libc::rlim_t = 1 << 20;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write `limit`, which
    // lives across both calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        let wanted = limit.rlim_max.min(CEILING);
        if limit.rlim_cur < wanted {
            let before = limit.rlim_cur;
            limit.rlim_cur = wanted;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                log::debug!("open file limit raised from {before} to {wanted}");
            }
        }
    }
}

fn main() -> ExitCode {
    // Before any thread starts.
    memory::limit_arenas();
    let config_file = match parse_args(std::env::args().skip(1)) {
        Invocation::Run { config_file } => config_file,
        Invocation::Exit(code) => return code,
    };
    let figment = config::figment(config_file.as_deref());
    let log_level = figment
        .extract_inner("log_level")
        .unwrap_or(rocket::config::LogLevel::Normal);
    let log_format = figment.extract_inner("log_format").unwrap_or_default();
    if let Err(e) = logging::init(log_level, log_format) {
        eprintln!("docker-connector: cannot set up logging: {e}");
    }
    raise_open_file_limit();
    let code = serve(figment);
    // Lines still queued for the log writer are written before the exit.
    logging::flush();
    code
}

fn serve(figment: rocket::figment::Figment) -> ExitCode {
    let server = match docker_connector::rocket(figment) {
        Ok(server) => server,
        Err(message) => {
            log::error!("{message}");
            return ExitCode::FAILURE;
        }
    };
    match rocket::execute(server.launch()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("server failed: {e}");
            ExitCode::FAILURE
        }
    }
}
