//! Bearer-token authentication for the gateway: the tokens come from `--auth-token-file`, are
//! compared in constant time, and are never logged, printed or shown by `Debug`.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use subtle::{Choice, ConstantTimeEq};

use crate::error::{InvError, Result};

use super::metrics::Metrics;

/// The accepted tokens. `Debug` shows how many there are, never what they are.
pub struct Tokens(Vec<Vec<u8>>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} redacted)", self.0.len())
    }
}

impl Tokens {
    /// Reads `--auth-token-file`: one token per line; blank lines and `#` comments are ignored.
    pub fn load(path: &Path) -> Result<Tokens> {
        let bytes = crate::files::read_bounded(path, crate::files::MAX_TOKEN_FILE_BYTES).and_then(
            |bytes| {
                String::from_utf8(bytes)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
            },
        );
        let text = bytes.map_err(|e| InvError::Usage(format!(
                "--auth-token-file {}: cannot read it: {e} (give a readable file with one token per line)",
                path.display()
            )))?;
        let tokens = Tokens::parse(&text);
        if tokens.0.is_empty() {
            return Err(InvError::Usage(format!(
                    "--auth-token-file {} holds no token: write one per line (e.g. openssl rand -hex 32 >> {}); blank lines and # comments are ignored",
                    path.display(),
                    path.display()
                )));
        }
        Ok(tokens)
    }

    fn parse(text: &str) -> Tokens {
        Tokens(
            text.lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .map(|line| line.as_bytes().to_vec())
                .collect(),
        )
    }

    /// Whether `candidate` is one of the tokens. Every token is compared, each in constant time,
    /// so the answer takes as long whichever token (if any) matches; only a token's length can
    /// show through timing, so use tokens of one length (such as `openssl rand -hex 32`).
    pub fn accepts(&self, candidate: &[u8]) -> bool {
        self.0
            .iter()
            .fold(Choice::from(0), |found, token| {
                found | token.as_slice().ct_eq(candidate)
            })
            .into()
    }
}

/// What the authentication middleware needs.
#[derive(Clone)]
pub struct Auth {
    pub tokens: Arc<Tokens>,
    pub metrics: Arc<Metrics>,
}

/// The token of an `Authorization: Bearer TOKEN` header (the scheme in any case).
fn bearer(request: &Request) -> Option<&[u8]> {
    let value = request.headers().get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = token.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Lets a request through only with a valid bearer token; otherwise answers 401 with
/// `WWW-Authenticate: Bearer` before the body is read, so nothing of it is stored.
pub async fn require_token(State(auth): State<Auth>, request: Request, next: Next) -> Response {
    if bearer(&request).is_some_and(|token| auth.tokens.accepts(token)) {
        return next.run(request).await;
    }
    auth.metrics.unauthorized();
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Json(json!({
            "error": "missing or invalid bearer token: send Authorization: Bearer TOKEN with a token from the gateway's --auth-token-file"
        })),
    )
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"invstream\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_lines_and_comments_are_not_tokens() {
        let tokens = Tokens::parse("# ops team\n\n  alpha  \n#beta\nbeta-2\n");
        assert!(tokens.accepts(b"alpha"));
        assert!(tokens.accepts(b"beta-2"));
        assert!(!tokens.accepts(b"#beta"));
        assert!(!tokens.accepts(b""));
        assert!(!tokens.accepts(b"alph"));
        assert!(!tokens.accepts(b"alphaa"));
    }

    #[test]
    fn debug_never_shows_a_token() {
        let tokens = Tokens::parse("s3cret-token\n");
        let shown = format!("{tokens:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(shown, "Tokens(1 redacted)");
    }

    #[test]
    fn an_empty_or_missing_file_names_the_flag() {
        let dir = std::env::temp_dir().join(format!("invstream-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty");
        std::fs::write(&empty, "# nothing\n\n").unwrap();
        for path in [empty.clone(), dir.join("missing")] {
            let message = Tokens::load(&path).unwrap_err().to_string();
            assert!(message.starts_with("--auth-token-file "), "{message}");
            assert!(!message.contains('\n'), "{message}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_the_bearer_scheme_is_read() {
        let with = |value: &str| {
            Request::builder()
                .header(header::AUTHORIZATION, value)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        assert_eq!(bearer(&with("Bearer abc")), Some(&b"abc"[..]));
        assert_eq!(bearer(&with("bearer  abc ")), Some(&b"abc"[..]));
        assert_eq!(bearer(&with("Basic abc")), None);
        assert_eq!(bearer(&with("Bearer ")), None);
    }
}
