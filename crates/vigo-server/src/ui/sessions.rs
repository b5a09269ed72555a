//! Dashboard sessions, held in this process's memory: a random 256-bit id
//! in an `HttpOnly; Secure; SameSite=Strict` cookie names a server-side
//! entry with the signed-in role and the session's CSRF token. Only a
//! SHA-256 digest of each id is kept, so a memory dump or a debug print
//! of the table yields no usable cookie.
//!
//! A session ends [`MAX_AGE`] after sign-in, after [`IDLE_TIMEOUT`]
//! without a request, at sign-out, or when the server restarts. Replicas do
//! not share sessions: behind a load balancer use sticky sessions, or sign
//! in again on the other replica.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "vigo_session";

/// How long a session lasts at most after sign-in.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(8 * 60 * 60);

/// How long a session lasts without a request.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Sessions held at most: the oldest are dropped beyond it (only someone
/// holding a token can sign in, but a loop of sign-ins must not grow the
/// table without bound).
const MAX_SESSIONS: usize = 10_000;

/// What a signed-in operator may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Signed in with the admin token: may approve and revoke.
    Admin,
    /// Signed in with `vigo/server/ui_viewer_token`: may only look.
    Viewer,
}

impl Role {
    /// How the page header names it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Viewer => "viewer (read-only)",
        }
    }
}

/// A live session as handlers see it.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// What the operator may do.
    pub role: Role,
    /// The token every form of this session carries (hex).
    pub csrf: String,
}

struct Entry {
    session: Session,
    created: Instant,
    seen: Instant,
}

/// The system random generator failed; no session can be made.
#[derive(Debug, thiserror::Error)]
#[error("the system random generator failed")]
pub(crate) struct RandomFailed;

/// `n` random bytes as hex.
pub(crate) fn random_hex<const N: usize>() -> Result<String, RandomFailed> {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| RandomFailed)?;
    Ok(hex::encode(bytes))
}

fn digest(id: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, id.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The sessions of this process.
#[derive(Default)]
pub(crate) struct Sessions {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("count", &self.lock().len())
            .finish()
    }
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        // Every critical section leaves the map whole; a panic elsewhere
        // does not make it unusable.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new session for `role`: its cookie value and its state.
    pub(crate) fn create(&self, role: Role) -> Result<(String, Session), RandomFailed> {
        self.create_at(role, Instant::now())
    }

    fn create_at(&self, role: Role, now: Instant) -> Result<(String, Session), RandomFailed> {
        let id = random_hex::<32>()?;
        let session = Session {
            role,
            csrf: random_hex::<32>()?,
        };
        let mut entries = self.lock();
        entries.retain(|_, e| live(e, now));
        while entries.len() >= MAX_SESSIONS {
            let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, e)| e.created)
                .map(|(k, _)| *k)
            else {
                break;
            };
            entries.remove(&oldest);
        }
        entries.insert(
            digest(&id),
            Entry {
                session: session.clone(),
                created: now,
                seen: now,
            },
        );
        Ok((id, session))
    }

    /// The live session named by cookie value `id` (its idle clock
    /// restarted); `None` when unknown or expired.
    pub(crate) fn get(&self, id: &str) -> Option<Session> {
        self.get_at(id, Instant::now())
    }

    fn get_at(&self, id: &str, now: Instant) -> Option<Session> {
        let key = digest(id);
        let mut entries = self.lock();
        let entry = entries.get_mut(&key)?;
        if !live(entry, now) {
            entries.remove(&key);
            return None;
        }
        entry.seen = now;
        Some(entry.session.clone())
    }

    /// Ends the session named by `id` (sign-out).
    pub(crate) fn remove(&self, id: &str) {
        self.lock().remove(&digest(id));
    }
}

fn live(entry: &Entry, now: Instant) -> bool {
    now.saturating_duration_since(entry.created) < MAX_AGE
        && now.saturating_duration_since(entry.seen) < IDLE_TIMEOUT
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value for the dashboard: `HttpOnly; Secure;
/// SameSite=Strict; Path=/ui`, lasting `max_age` (zero deletes it).
pub(crate) fn set_cookie(name: &str, value: &str, max_age: Duration) -> String {
    format!(
        "{name}={value}; HttpOnly; Secure; SameSite=Strict; Path=/ui; Max-Age={}",
        max_age.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_when_idle_and_after_max_age() {
        let sessions = Sessions::default();
        let start = Instant::now();
        let (id, made) = sessions.create_at(Role::Admin, start).unwrap();
        assert_eq!(id.len(), 64);
        assert_eq!(made.csrf.len(), 64);
        let got = sessions.get_at(&id, start + IDLE_TIMEOUT / 2).unwrap();
        assert_eq!((got.role, got.csrf), (Role::Admin, made.csrf));
        // Each request restarts the idle clock ...
        let mut at = start;
        for _ in 0..4 {
            at += IDLE_TIMEOUT - Duration::from_secs(1);
            assert!(sessions.get_at(&id, at).is_some());
        }
        // ... but not past the maximum age.
        assert!(sessions.get_at(&id, start + MAX_AGE).is_none());
        let (idle, _) = sessions.create_at(Role::Viewer, start).unwrap();
        assert!(sessions.get_at(&idle, start + IDLE_TIMEOUT).is_none());
        assert!(sessions.get("not-a-session").is_none());
    }

    #[test]
    fn sign_out_ends_a_session_and_ids_are_not_stored() {
        let sessions = Sessions::default();
        let (id, _) = sessions.create(Role::Admin).unwrap();
        assert!(!format!("{sessions:?}").contains(&id));
        sessions.remove(&id);
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = axum::http::HeaderMap::new();
        headers.append("cookie", "a=1; vigo_session=abc".parse().unwrap());
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "b"), None);
        assert_eq!(
            set_cookie("x", "y", MAX_AGE),
            "x=y; HttpOnly; Secure; SameSite=Strict; Path=/ui; Max-Age=28800"
        );
    }
}
