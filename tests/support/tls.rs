//! A certificate authority made at run time with the `openssl` CLI: its
//! certificate, a server certificate for 127.0.0.1 and localhost, and a
//! client certificate for mutual TLS, all in a temporary directory, and the
//! `ROCKET_TLS` value that gives them to the connector. The performance
//! bench includes this file alone (`#[path]`), so it needs nothing but std
//! and tempfile.
//!
//! Each file is made by `openssl req -x509` from a configuration of its own,
//! so nothing of the host's `openssl.cnf` gets in: rustls (webpki) refuses a
//! server certificate that says `CA:TRUE`, which that file's defaults add.

use std::path::PathBuf;
use std::process::Command;

/// Whether the connector asks for client certificates (`tls.mutual`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCertificates {
    /// No `tls.mutual`: a client certificate is never asked for.
    Off,
    /// `tls.mutual.mandatory = false`: asked for, checked against the CA
    /// when sent, and a client without one is let through.
    Optional,
    /// `tls.mutual.mandatory = true`: the handshake fails without one.
    Mandatory,
}

/// The files of a test CA, deleted with it.
pub struct TestCa {
    dir: tempfile::TempDir,
}

impl TestCa {
    /// Makes the CA, then the server and client certificates it signs
    /// (EC P-256 keys, valid for two days).
    ///
    /// # Panics
    ///
    /// If `openssl` cannot be run or fails; its stderr is in the message.
    pub fn new() -> TestCa {
        let ca = TestCa {
            dir: tempfile::tempdir().expect("a temporary directory"),
        };
        ca.make(
            "ca",
            "docker-connector test CA",
            "basicConstraints = critical,CA:TRUE\n\
             keyUsage = critical,keyCertSign,cRLSign\n\
             subjectKeyIdentifier = hash\n",
            false,
        );
        ca.make(
            "server",
            "localhost",
            "basicConstraints = critical,CA:FALSE\n\
             keyUsage = critical,digitalSignature\n\
             extendedKeyUsage = serverAuth\n\
             subjectAltName = IP:127.0.0.1,DNS:localhost\n\
             subjectKeyIdentifier = hash\n\
             authorityKeyIdentifier = keyid\n",
            true,
        );
        ca.make(
            "client",
            "docker-connector test client",
            "basicConstraints = critical,CA:FALSE\n\
             keyUsage = critical,digitalSignature\n\
             extendedKeyUsage = clientAuth\n\
             subjectKeyIdentifier = hash\n\
             authorityKeyIdentifier = keyid\n",
            true,
        );
        ca
    }

    /// The CA's certificate (PEM): what a client trusts, and what checks
    /// client certificates.
    pub fn ca_cert(&self) -> PathBuf {
        self.path("ca.pem")
    }

    pub fn server_cert(&self) -> PathBuf {
        self.path("server.pem")
    }

    pub fn server_key(&self) -> PathBuf {
        self.path("server.key")
    }

    pub fn client_cert(&self) -> PathBuf {
        self.path("client.pem")
    }

    pub fn client_key(&self) -> PathBuf {
        self.path("client.key")
    }

    /// The value of `ROCKET_TLS` that serves the server certificate and
    /// asks for client certificates as `clients` says. (A path's `Debug`
    /// form is a valid TOML string: quoted, `\\` and `"` escaped.)
    pub fn rocket_tls(&self, clients: ClientCertificates) -> String {
        let mutual = match clients {
            ClientCertificates::Off => String::new(),
            ClientCertificates::Optional | ClientCertificates::Mandatory => format!(
                ",mutual={{ca_certs={:?},mandatory={}}}",
                self.ca_cert(),
                clients == ClientCertificates::Mandatory
            ),
        };
        format!(
            "{{certs={:?},key={:?}{mutual}}}",
            self.server_cert(),
            self.server_key()
        )
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `<name>.pem` and `<name>.key` for the subject `common_name`
    /// with the v3 `extensions`, signed by the CA if `signed`, else by
    /// itself.
    fn make(&self, name: &str, common_name: &str, extensions: &str, signed: bool) {
        let config = self.path(&format!("{name}.cnf"));
        std::fs::write(
            &config,
            format!(
                "[req]\ndistinguished_name = subject\nprompt = no\nx509_extensions = v3\n\
                 [subject]\nCN = {common_name}\n[v3]\n{extensions}"
            ),
        )
        .expect("the openssl configuration can be written");
        let mut openssl = Command::new("openssl");
        openssl
            .args(["req", "-x509", "-config"])
            .arg(&config)
            .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
            .args(["-noenc", "-days", "2", "-keyout"])
            .arg(self.path(&format!("{name}.key")))
            .arg("-out")
            .arg(self.path(&format!("{name}.pem")));
        if signed {
            openssl
                .arg("-CA")
                .arg(self.ca_cert())
                .arg("-CAkey")
                .arg(self.path("ca.key"));
        }
        run_openssl(openssl, name);
    }
}

fn run_openssl(mut openssl: Command, what: &str) {
    let out = openssl
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl (needed for the test CA): {e}"));
    assert!(
        out.status.success(),
        "openssl could not make the {what} certificate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
