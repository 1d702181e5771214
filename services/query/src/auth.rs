//! API tokens with a role per avatar.
//!
//! Tokens are stored only as their sha256 (hex): a leaked `auth.db` gives nobody access. The
//! plaintext is shown once, by `create`. A token grants one role on one avatar; the router turns
//! a request's token into its grants before any backend call, so the backend only ever sees an
//! avatar id the caller may see.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a token may do on its avatar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything (same as editor for now; will own token management and forgetting).
    Owner,
    /// Viewer + add and delete memories.
    Editor,
    /// Ask, chat, search, read records, list memories, status.
    Viewer,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
        }
    }

    /// Whether this role may add and delete memories.
    pub fn can_edit(&self) -> bool {
        matches!(self, Role::Owner | Role::Editor)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AuthError;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "owner" => Ok(Role::Owner),
            "editor" => Ok(Role::Editor),
            "viewer" => Ok(Role::Viewer),
            other => Err(AuthError::BadRole(other.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("unknown role {0:?} (expected owner, editor or viewer)")]
    BadRole(String),
    #[error("invalid avatar id {0:?}")]
    BadAvatar(String),
    #[error("token store: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("no randomness for a token: {0}")]
    Random(#[from] std::io::Error),
    #[error("token store lock poisoned")]
    Poisoned,
}

pub type Result<T> = std::result::Result<T, AuthError>;

/// A token as listings show it: never the token itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// The first 12 hex characters of the token's hash; what `revoke` takes.
    pub id: String,
    pub avatar: String,
    pub role: Role,
    pub created_at: String,
}

/// The token table in `DIR/auth.db`.
pub struct TokenStore {
    conn: Mutex<Connection>,
}

/// Prefix of every token, so that leaked tokens are easy to recognise (secret scanners).
pub const TOKEN_PREFIX: &str = "avt_";

/// Length of the `id` shown for a token.
const ID_LEN: usize = 12;

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The id `token list` shows for `token` (who did what, in the audit log, without the secret).
pub fn token_id(token: &str) -> String {
    let mut h = hash_token(token);
    h.truncate(ID_LEN);
    h
}

/// `n` random bytes from the kernel.
pub(crate) fn random_bytes(n: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}

impl TokenStore {
    /// Opens (creating if needed) the token database at `path`.
    pub fn open(path: &Path) -> Result<TokenStore> {
        let conn = Connection::open(path)?;
        Self::init(conn)
    }

    /// A store that lives only in memory (tests, throwaway servers).
    pub fn in_memory() -> Result<TokenStore> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<TokenStore> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS tokens (
                hash TEXT PRIMARY KEY,
                avatar TEXT NOT NULL,
                role TEXT NOT NULL,
                created_at TEXT NOT NULL
            );",
        )?;
        Ok(TokenStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| AuthError::Poisoned)
    }

    /// Creates a token granting `role` on `avatar`; returns the plaintext, which is not kept.
    pub fn create(&self, avatar: &str, role: Role) -> Result<String> {
        if avatar.trim().is_empty() || avatar.len() > 200 {
            return Err(AuthError::BadAvatar(avatar.to_string()));
        }
        let token = format!("{TOKEN_PREFIX}{}", hex::encode(random_bytes(32)?));
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        self.conn()?.execute(
            "INSERT INTO tokens (hash, avatar, role, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![hash_token(&token), avatar, role.as_str(), now],
        )?;
        Ok(token)
    }

    /// Every token, oldest first.
    pub fn list(&self) -> Result<Vec<TokenInfo>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT hash, avatar, role, created_at FROM tokens ORDER BY created_at, hash",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (hash, avatar, role, created_at) = row?;
            out.push(TokenInfo {
                id: hash.chars().take(ID_LEN).collect(),
                avatar,
                role: role.parse()?,
                created_at,
            });
        }
        Ok(out)
    }

    /// Removes the token(s) whose hash starts with `id`; false if none did.
    pub fn revoke(&self, id: &str) -> Result<bool> {
        // The id goes into a LIKE pattern: only hex is accepted, so no wildcard can sneak in.
        let id = id.trim().to_ascii_lowercase();
        if id.len() < ID_LEN || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(false);
        }
        let n = self.conn()?.execute(
            "DELETE FROM tokens WHERE hash LIKE ?1",
            params![format!("{id}%")],
        )?;
        Ok(n > 0)
    }

    /// The (avatar, role) grants of a presented token; empty for an unknown token.
    pub fn grants(&self, token: &str) -> Result<Vec<(String, Role)>> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 200 {
            return Ok(Vec::new());
        }
        let conn = self.conn()?;
        let row: Option<(String, String)> = conn
            .query_row(
                "SELECT avatar, role FROM tokens WHERE hash = ?1",
                params![hash_token(token)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match row {
            Some((avatar, role)) => Ok(vec![(avatar, role.parse()?)]),
            None => Ok(Vec::new()),
        }
    }
}

/// The token of an `Authorization: Bearer …` header value; None when absent or malformed.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn role_round_trips() {
        for r in [Role::Owner, Role::Editor, Role::Viewer] {
            assert_eq!(r.to_string().parse::<Role>().unwrap(), r);
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{r}\""));
        }
        assert!("admin".parse::<Role>().is_err());
        assert!(!Role::Viewer.can_edit());
        assert!(Role::Editor.can_edit() && Role::Owner.can_edit());
    }

    #[test]
    fn tokens_are_hashed_granted_listed_and_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.db");
        let store = TokenStore::open(&path).unwrap();
        let t1 = store.create("alice", Role::Viewer).unwrap();
        let t2 = store.create("bob", Role::Owner).unwrap();
        assert!(t1.starts_with("avt_") && t1.len() == 4 + 64, "{t1}");
        assert!(t1[4..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(t1, t2);
        assert_eq!(
            store.grants(&t1).unwrap(),
            vec![("alice".into(), Role::Viewer)]
        );
        assert_eq!(
            store.grants(&t2).unwrap(),
            vec![("bob".into(), Role::Owner)]
        );
        assert!(store.grants("avt_nope").unwrap().is_empty());
        assert!(store.grants("").unwrap().is_empty());

        // Not stored in plaintext.
        drop(store);
        let raw = std::fs::read(&path).unwrap();
        let needle = t1.as_bytes();
        assert!(!raw.windows(needle.len()).any(|w| w == needle));

        let store = TokenStore::open(&path).unwrap();
        let list = store.list().unwrap();
        assert_eq!(list.len(), 2);
        let alice = list.iter().find(|t| t.avatar == "alice").unwrap();
        assert_eq!(alice.id, hash_token(&t1)[..12]);
        assert_eq!(alice.role, Role::Viewer);
        assert!(!store.revoke("%").unwrap(), "wildcards are not ids");
        assert!(!store.revoke("").unwrap());
        assert!(store.revoke(&alice.id).unwrap());
        assert!(!store.revoke(&alice.id).unwrap());
        assert!(store.grants(&t1).unwrap().is_empty());
        assert_eq!(store.list().unwrap().len(), 1);
        assert!(store.create(" ", Role::Viewer).is_err());
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(Some("abc")), None);
        assert_eq!(bearer(None), None);
    }
}
