//! The broker, split by job: [`settings`] (URI and TLS, from plain values), [`connection`]
//! (connecting, the retry loops), [`admin`] (creating and inspecting streams), [`management`] (the
//! management HTTP API: listing streams and what they track), [`errors`] (the
//! client's errors as errors a user can act on), [`lock`] (one process per producer name),
//! [`leader`] (which node leads a stream, asked of all), [`tls`] (the one rustls configuration) and [`version`] (naming a broker too old).

pub mod admin;
pub mod connection;
pub mod errors;
pub mod leader;
pub mod lock;
pub mod management;
pub mod pem_text;
pub mod settings;
pub mod tls;
pub mod version;

pub use admin::{Retention, StreamBounds, StreamMembers};
pub use management::Management;
pub use settings::{redact_uri, BrokerSettings, Password, TlsFiles, TlsSettings, DEFAULT_URI};
pub use version::{version_at_least, VersionProbe};
