//! Where and as whom to connect: the broker URI and the TLS files, parsed and checked from plain
//! values (the settings stage hands them over; nothing here knows the command line).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use percent_encoding::percent_decode_str;
use rabbitmq_stream_client::{ClientOptions, TlsConfiguration};

use crate::error::{ConnectError, InvError, Result};

/// The URI used when neither `--uri` nor `INVSTREAM_URI` is given: a local broker's defaults.
pub const DEFAULT_URI: &str = "rabbitmq-stream://guest:guest@localhost:5552/%2f";

const DEFAULT_PORT: u16 = 5552;
const DEFAULT_TLS_PORT: u16 = 5551;
/// Where and as whom to connect; shared by every command. Its `Display` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerSettings {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub(super) password: String,
    pub vhost: String,
    /// Set for `rabbitmq-stream+tls://` URIs.
    pub tls: Option<TlsSettings>,
    /// How long a command keeps reconnecting after the connection drops mid-run.
    pub retry_for: Duration,
    /// More nodes of the same cluster (`host`, `port`), tried in order after the first when it
    /// does not answer: at start-up and on every reconnect.
    pub other_nodes: Vec<(String, u16)>,
}

/// A password given apart from the URIs (`--password-file`, `INVSTREAM_PASSWORD`). Its `Debug`
/// hides it, and nothing else shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(password: String) -> Self {
        Password(password)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// How to check the broker's certificate and, optionally, present ours.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TlsSettings {
    /// CA certificates (PEM) the broker's certificate must chain to; `None` only with `insecure`.
    pub ca_cert: Option<PathBuf>,
    /// Client certificate and PKCS#8 key (PEM).
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Skip the broker certificate check.
    pub insecure: bool,
}

/// The TLS files and choices as the user gave them, before they are checked.
#[derive(Clone, Debug, Default)]
pub struct TlsFiles {
    pub ca_cert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub insecure: bool,
}

impl TlsFiles {
    fn any_given(&self) -> bool {
        self.ca_cert.is_some() || self.cert.is_some() || self.insecure
    }
}

impl TlsSettings {
    /// Checks the files before the client reads them: it panics on some malformed ones.
    fn checked(args: &TlsFiles) -> Result<Self> {
        if let Some(ca) = &args.ca_cert {
            check_pem(ca, "--tls-ca-cert", &["CERTIFICATE"])?;
        }
        if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
            check_pem(cert, "--tls-cert", &["CERTIFICATE"])?;
            check_pem(key, "--tls-key", &["PRIVATE KEY"])?;
        }
        if args.cert.is_some() && args.insecure {
            return Err(tls_error("--tls-cert and --tls-key need the broker's certificate checked: the client presents its certificate only to a broker whose certificate it checks (drop --tls-insecure; give --tls-ca-cert FILE unless a CA of the system trust store signed it)"));
        }
        Ok(TlsSettings {
            ca_cert: args.ca_cert.clone(),
            client_cert: args.cert.clone().zip(args.key.clone()),
            insecure: args.insecure,
        })
    }
}

/// Fails unless `path` is a readable PEM file with a block of one of `kinds` (the client only
/// reads PKCS#8 keys, "BEGIN PRIVATE KEY").
fn check_pem(path: &Path, option: &str, kinds: &[&str]) -> Result<()> {
    let bytes = crate::files::read_bounded(path, crate::files::MAX_PEM_FILE_BYTES)
        .map_err(|e| tls_error(format!("cannot read {option} {}: {e}", path.display())))?;
    let text = String::from_utf8_lossy(&bytes);
    if kinds
        .iter()
        .any(|kind| text.contains(&format!("-----BEGIN {kind}-----")))
    {
        return check_certificates(&bytes, path, option, kinds);
    }
    let hint = match kinds.contains(&"PRIVATE KEY") && text.contains("PRIVATE KEY-----") {
        true => " (convert the key to PKCS#8: openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8)",
        false => "",
    };
    Err(tls_error(format!(
        "{option} {} holds no PEM \"BEGIN {}\" block{hint}",
        path.display(),
        kinds[0]
    )))
}

/// Fails unless every certificate block decodes, and for a CA, is one rustls can trust: the
/// client unwraps what it cannot add to its trust store (a panic, not an error).
fn check_certificates(bytes: &[u8], path: &Path, option: &str, kinds: &[&str]) -> Result<()> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    if !kinds.contains(&"CERTIFICATE") {
        return Ok(());
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(bytes) {
        let cert = cert.map_err(|e| {
            tls_error(format!(
                "{option} {} is not valid PEM ({}): use the certificate in PEM form (openssl x509 -in FILE -out FILE.pem)",
                path.display(),
                super::pem_text::describe(&e)
            ))
        })?;
        if option == "--tls-ca-cert" {
            roots.add(cert).map_err(|e| {
                tls_error(format!(
                    "{option} {} is not valid PEM: a certificate in it cannot be read ({e})",
                    path.display()
                ))
            })?;
        }
    }
    Ok(())
}

fn tls_error(message: impl Into<String>) -> InvError {
    ConnectError::Tls {
        message: message.into(),
    }
    .into()
}

impl fmt::Debug for BrokerSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BrokerSettings({self})")
    }
}

impl fmt::Display for BrokerSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let vhost =
            percent_encoding::utf8_percent_encode(&self.vhost, percent_encoding::NON_ALPHANUMERIC);
        write!(
            f,
            "rabbitmq-stream://{}:***@{}:{}/{}",
            self.user, self.host, self.port, vhost
        )
    }
}

impl BrokerSettings {
    /// Parses `rabbitmq-stream://USER:PASSWORD@HOST:PORT/VHOST`; the vhost is percent-decoded
    /// (`%2f` is the default vhost `/`), a missing port is 5552, missing credentials are guest.
    pub fn from_uri(uri: &str) -> Result<Self> {
        let invalid = |reason: &str| -> InvError {
            ConnectError::InvalidUri {
                uri: redact_uri(uri),
                reason: reason.to_string(),
            }
            .into()
        };
        let url = url::Url::parse(uri).map_err(|e| invalid(&e.to_string()))?;
        let tls = match url.scheme() {
            "rabbitmq-stream" => None,
            // Completed by `new` with the certificate options.
            "rabbitmq-stream+tls" => Some(TlsSettings::default()),
            other => {
                return Err(invalid(&format!(
                    "unknown scheme '{other}' (rabbitmq-stream:// or rabbitmq-stream+tls://)"
                )))
            }
        };
        let host = match url.host_str() {
            Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']'),
            _ => return Err(invalid("no host")),
        };
        let decode = |s: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| invalid("not valid UTF-8 after percent-decoding"))
        };
        let user = match url.username() {
            "" => "guest".to_string(),
            u => decode(u)?,
        };
        let password = match url.password() {
            None if url.username().is_empty() => "guest".to_string(),
            None => String::new(),
            Some(p) => decode(p)?,
        };
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(
                "a query string or fragment (?… or #…) is not read by invstream: leave it out (TLS files are --tls-ca-cert, --tls-cert and --tls-key)",
            ));
        }
        let path = url.path().strip_prefix('/').unwrap_or(url.path());
        if path.contains('/') {
            return Err(invalid(
                "the path must be a single vhost name (write '/' as %2f)",
            ));
        }
        let vhost = match path {
            "" => "/".to_string(),
            p => decode(p)?,
        };
        let default_port = match tls {
            Some(_) => DEFAULT_TLS_PORT,
            None => DEFAULT_PORT,
        };
        Ok(BrokerSettings {
            host: host.to_string(),
            port: url.port().unwrap_or(default_port),
            user,
            password,
            vhost,
            tls,
            retry_for: Duration::ZERO,
            other_nodes: Vec::new(),
        })
    }

    /// The settings every command starts from: the URIs (one, or one per node of a cluster:
    /// the same user, password, vhost and scheme), the password that replaces theirs when one is
    /// given apart, the TLS files and how long to keep reconnecting.
    pub fn new(
        uris: &[String],
        password: Option<&Password>,
        tls: &TlsFiles,
        retry_for: Duration,
    ) -> Result<Self> {
        let (first, others) = match uris.split_first() {
            Some(split) => split,
            None => (&DEFAULT_URI.to_string(), &[][..]),
        };
        let with_password = |mut settings: Self| {
            if let Some(Password(password)) = password {
                settings.password = password.clone();
            }
            settings
        };
        let mut settings = with_password(Self::from_uri(first)?);
        for uri in others {
            let other = with_password(Self::from_uri(uri)?);
            let same_access = (
                &other.user,
                &other.password,
                &other.vhost,
                other.tls.is_some(),
            ) == (
                &settings.user,
                &settings.password,
                &settings.vhost,
                settings.tls.is_some(),
            );
            if !same_access {
                return Err(ConnectError::InvalidUri {
                    uri: redact_uri(uri),
                    reason: "every --uri must name the same user, password, vhost and scheme (they are nodes of one cluster)".to_string(),
                }
                .into());
            }
            if (other.host.as_str(), other.port) != (settings.host.as_str(), settings.port) {
                settings.other_nodes.push((other.host, other.port));
            }
        }
        settings.retry_for = retry_for;
        match &mut settings.tls {
            Some(settings) => *settings = TlsSettings::checked(tls)?,
            None if tls.any_given() => return Err(tls_error(
                "TLS options need a rabbitmq-stream+tls:// URI (the broker's TLS port, 5551 by default)",
            )),
            None => {}
        }
        Ok(settings)
    }

    /// The client's TLS: the one rustls configuration (`broker::tls`), or none.
    pub(super) fn tls_configuration(&self) -> Result<TlsConfiguration> {
        match &self.tls {
            Some(tls) => Ok(TlsConfiguration::Custom(super::tls::client_config(tls)?)),
            None => Ok(TlsConfiguration::default()),
        }
    }

    /// `host:port` (of every node given, comma-separated), for messages.
    pub fn addr(&self) -> String {
        let mut addr = format!("{}:{}", self.host, self.port);
        for (host, port) in &self.other_nodes {
            addr.push_str(&format!(",{host}:{port}"));
        }
        addr
    }

    /// These settings once per node, the first given first; each names that node alone.
    pub fn each_node(&self) -> Vec<BrokerSettings> {
        let one = |host: &str, port: u16| BrokerSettings {
            host: host.to_string(),
            port,
            other_nodes: Vec::new(),
            ..self.clone()
        };
        std::iter::once(one(&self.host, self.port))
            .chain(self.other_nodes.iter().map(|(host, port)| one(host, *port)))
            .collect()
    }

    pub(crate) fn client_options(&self) -> Result<ClientOptions> {
        Ok(ClientOptions::builder()
            .host(&self.host)
            .port(self.port)
            .user(&self.user)
            .password(&self.password)
            .v_host(&self.vhost)
            .client_provided_name("invstream".to_string())
            .tls(self.tls_configuration()?)
            .build())
    }
}

/// Replaces the password in a URI-like string, for error messages about unparsable URIs.
pub fn redact_uri(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_string();
    };
    let Some(at) = rest.rfind('@') else {
        return uri.to_string();
    };
    let (credentials, host) = rest.split_at(at);
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{host}"),
        None => uri.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_uri_is_the_local_broker() {
        let s = BrokerSettings::from_uri(DEFAULT_URI).unwrap();
        assert_eq!((s.host.as_str(), s.port), ("localhost", 5552));
        assert_eq!((s.user.as_str(), s.password.as_str()), ("guest", "guest"));
        assert_eq!(s.vhost, "/");
    }

    #[test]
    fn every_part_comes_from_the_uri() {
        let s = BrokerSettings::from_uri(
            "rabbitmq-stream://al%40ice:p%3Ass@broker.example:6000/shop%2Feu",
        )
        .unwrap();
        assert_eq!(s.host, "broker.example");
        assert_eq!(s.port, 6000);
        assert_eq!(s.user, "al@ice");
        assert_eq!(s.password, "p:ss");
        assert_eq!(s.vhost, "shop/eu");
        let s = BrokerSettings::from_uri("rabbitmq-stream://127.0.0.1").unwrap();
        assert_eq!(
            (s.port, s.vhost.as_str(), s.user.as_str()),
            (5552, "/", "guest")
        );
        let s = BrokerSettings::from_uri("rabbitmq-stream://u:p@[::1]:5552/v").unwrap();
        assert_eq!((s.host.as_str(), s.vhost.as_str()), ("::1", "v"));
    }

    #[test]
    fn display_and_debug_hide_the_password() {
        let s = BrokerSettings::from_uri("rabbitmq-stream://u:s3cret@h:1/%2f").unwrap();
        assert_eq!(s.to_string(), "rabbitmq-stream://u:***@h:1/%2F");
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn bad_uris_are_rejected_without_leaking_the_password() {
        for uri in [
            "amqp://u:s3cret@h:5672/",
            "rabbitmq-stream://u:s3cret@h:notaport/",
            "not a uri s3cret",
            "rabbitmq-stream://u:s3cret@h/a/b",
            "rabbitmq-stream+tls://u:s3cret@h:bad/",
        ] {
            let err = BrokerSettings::from_uri(uri).unwrap_err().to_string();
            assert!(err.starts_with("invalid --uri"), "{err}");
            assert!(
                !err.contains("s3cret") || uri.starts_with("not a uri"),
                "{err}"
            );
        }
    }

    /// Settings from a URI and TLS flags as a user gives them.
    fn settings(args: &[&str]) -> Result<BrokerSettings> {
        let mut uri = DEFAULT_URI;
        let mut tls = TlsFiles::default();
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            match *flag {
                "--tls-insecure" => tls.insecure = true,
                flag => {
                    let value = *args.next().unwrap();
                    match flag {
                        "--uri" => uri = value,
                        "--tls-ca-cert" => tls.ca_cert = Some(value.into()),
                        "--tls-cert" => tls.cert = Some(value.into()),
                        "--tls-key" => tls.key = Some(value.into()),
                        _ => unreachable!("{flag}"),
                    }
                }
            }
        }
        BrokerSettings::new(&[uri.to_string()], None, &tls, Duration::ZERO)
    }

    #[test]
    fn several_uris_are_nodes_of_one_cluster() {
        let uris = |list: &[&str]| list.iter().map(|u| u.to_string()).collect::<Vec<_>>();
        let s = BrokerSettings::new(
            &uris(&[
                "rabbitmq-stream://u:p@a:1/v",
                "rabbitmq-stream://u:p@b:2/v",
                "rabbitmq-stream://u:p@a:1/v",
            ]),
            None,
            &TlsFiles::default(),
            Duration::ZERO,
        )
        .unwrap();
        assert_eq!(s.addr(), "a:1,b:2");
        let nodes: Vec<_> = s.each_node().iter().map(|n| n.addr()).collect();
        assert_eq!(nodes, ["a:1", "b:2"]);
        let err = BrokerSettings::new(
            &uris(&[
                "rabbitmq-stream://u:s3cret@a:1/v",
                "rabbitmq-stream://w:s3cret@b:2/v",
            ]),
            None,
            &TlsFiles::default(),
            Duration::ZERO,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("same user, password, vhost"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }

    /// A password given apart replaces every URI's (or supplies it), so nodes whose URIs
    /// differ only there are one cluster, and it shows nowhere.
    #[test]
    fn a_password_given_apart_replaces_every_uris() {
        let uris = [
            "rabbitmq-stream://u:old@a:1/v".to_string(),
            "rabbitmq-stream://u@b:2/v".to_string(),
        ];
        let password = Password::new("n3w".into());
        let s = BrokerSettings::new(&uris, Some(&password), &TlsFiles::default(), Duration::ZERO)
            .unwrap();
        assert_eq!(s.password, "n3w");
        assert_eq!(s.addr(), "a:1,b:2");
        assert!(s.each_node().iter().all(|n| n.password == "n3w"));
        let shown = format!("{s} {s:?} {password:?}");
        assert!(!shown.contains("n3w"), "{shown}");
        let plain = BrokerSettings::new(
            &["rabbitmq-stream://localhost".to_string()],
            Some(&password),
            &TlsFiles::default(),
            Duration::ZERO,
        )
        .unwrap();
        assert_eq!(
            (plain.user.as_str(), plain.password.as_str()),
            ("guest", "n3w")
        );
    }

    /// Every combination of the TLS flags (each alone and together, with a TLS URI and a
    /// plain one) is accepted, with a configuration the client can build, or refused in one
    /// line: none reaches the client's builder with what it cannot take (it panicked for
    /// --tls-insecure with a client certificate).
    #[test]
    fn every_combination_of_tls_flags_is_accepted_or_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, certified.cert.pem()).unwrap();
        let key = dir.path().join("client.key");
        std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
        let (ca, key) = (ca.to_str().unwrap(), key.to_str().unwrap());
        for uri in [
            "rabbitmq-stream+tls://u:p@h/%2f",
            "rabbitmq-stream://u:p@h/%2f",
        ] {
            for mask in 0..16u8 {
                let mut args = vec!["--uri", uri];
                if mask & 1 != 0 {
                    args.push("--tls-insecure");
                }
                if mask & 2 != 0 {
                    args.extend(["--tls-ca-cert", ca]);
                }
                if mask & 4 != 0 {
                    args.extend(["--tls-cert", ca]);
                }
                if mask & 8 != 0 {
                    args.extend(["--tls-key", key]);
                }
                match settings(&args) {
                    Ok(s) => {
                        // Accepted: the one rustls configuration builds from it.
                        let broker = &s;
                        assert!(broker.tls_configuration().is_ok(), "{args:?}");
                    }
                    Err(e) => {
                        let e = e.to_string();
                        assert!(!e.contains('\n') && e.len() > 20, "{args:?}: {e}");
                    }
                }
            }
        }
        let insecure_with_cert = settings(&[
            "--uri",
            "rabbitmq-stream+tls://u:p@h/%2f",
            "--tls-insecure",
            "--tls-cert",
            ca,
            "--tls-key",
            key,
        ]);
        let e = insecure_with_cert.unwrap_err().to_string();
        assert!(e.contains("drop --tls-insecure"), "{e}");
    }

    #[test]
    fn tls_needs_a_tls_uri_and_a_ca_or_insecure() {
        let dir = std::env::temp_dir().join(format!("invstream-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        // A real certificate: the CA file is parsed when the settings are built.
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::write(&ca, certified.cert.pem()).unwrap();
        let rsa_key = dir.join("rsa.key");
        std::fs::write(&rsa_key, "-----BEGIN RSA PRIVATE KEY-----\nAA==\n").unwrap();
        let ca = ca.to_str().unwrap();
        let tls_uri = "rabbitmq-stream+tls://u:p@h/%2f";

        let s = settings(&["--uri", tls_uri, "--tls-ca-cert", ca]).unwrap();
        assert_eq!(s.port, 5551);
        assert_eq!(
            s.tls.as_ref().unwrap().ca_cert.as_deref(),
            Some(Path::new(ca))
        );
        assert!(
            settings(&["--uri", tls_uri, "--tls-insecure"])
                .unwrap()
                .tls
                .unwrap()
                .insecure
        );

        // No CA file: the system trust store checks the broker's certificate.
        let system = settings(&["--uri", tls_uri]).unwrap().tls.unwrap();
        assert!(system.ca_cert.is_none() && !system.insecure);
        let err = settings(&["--tls-ca-cert", ca]).unwrap_err().to_string();
        assert!(err.contains("need a rabbitmq-stream+tls:// URI"), "{err}");
        let err = settings(&["--uri", tls_uri, "--tls-ca-cert", "/nonexistent/ca.pem"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read --tls-ca-cert"), "{err}");
        let key = rsa_key.to_str().unwrap();
        let err = settings(&[
            "--uri",
            tls_uri,
            "--tls-ca-cert",
            ca,
            "--tls-cert",
            ca,
            "--tls-key",
            key,
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("openssl pkcs8 -topk8"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
