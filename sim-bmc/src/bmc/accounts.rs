//! Accounts, roles and sessions of one BMC. Verified Basic credentials are cached, so a request costs a
//! map lookup rather than a password hash.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A predefined Redfish role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Role {
    #[default]
    Administrator,
    Operator,
    ReadOnly,
}

/// A Redfish privilege.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    Login,
    ConfigureComponents,
    ConfigureManager,
    ConfigureUsers,
    ConfigureSelf,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Administrator, Role::Operator, Role::ReadOnly];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Administrator => "Administrator",
            Role::Operator => "Operator",
            Role::ReadOnly => "ReadOnly",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn privileges(self) -> &'static [&'static str] {
        match self {
            Role::Administrator => &[
                "Login",
                "ConfigureManager",
                "ConfigureUsers",
                "ConfigureSelf",
                "ConfigureComponents",
            ],
            Role::Operator => &["Login", "ConfigureSelf", "ConfigureComponents"],
            Role::ReadOnly => &["Login", "ConfigureSelf"],
        }
    }

    pub fn has(self, privilege: Privilege) -> bool {
        match privilege {
            Privilege::Login | Privilege::ConfigureSelf => true,
            Privilege::ConfigureComponents => self != Role::ReadOnly,
            Privilege::ConfigureManager | Privilege::ConfigureUsers => self == Role::Administrator,
        }
    }
}

/// One BMC user.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub username: String,
    pub role: Role,
    pub enabled: bool,
    digest: [u8; 32],
}

fn digest(username: &str, password: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(username.as_bytes());
    h.update([0]);
    h.update(password.as_bytes());
    h.finalize().into()
}

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub username: String,
    pub role: Role,
    /// Set when the request authenticated with a session token.
    pub session_id: Option<String>,
}

/// Upper bound of cached Basic headers per BMC (clients reuse one header, so this is plenty).
const BASIC_CACHE_LIMIT: usize = 16;

#[derive(Default)]
pub struct AccountStore {
    accounts: RwLock<Vec<Account>>,
    next_id: AtomicU64,
    basic_cache: Mutex<HashMap<String, String>>,
}

impl AccountStore {
    pub fn new(initial: &[(String, String, Role)]) -> Self {
        let store = Self::default();
        for (user, pass, role) in initial {
            store.create(user, pass, *role, true);
        }
        store
    }

    pub fn list(&self) -> Vec<Account> {
        self.accounts.read().map(|a| a.clone()).unwrap_or_default()
    }

    pub fn get(&self, id: &str) -> Option<Account> {
        self.list().into_iter().find(|a| a.id == id)
    }

    pub fn by_name(&self, username: &str) -> Option<Account> {
        self.list().into_iter().find(|a| a.username == username)
    }

    pub fn create(&self, username: &str, password: &str, role: Role, enabled: bool) -> Account {
        let id = (self.next_id.fetch_add(1, Ordering::Relaxed) + 1).to_string();
        let account = Account {
            id,
            username: username.to_string(),
            role,
            enabled,
            digest: digest(username, password),
        };
        if let Ok(mut a) = self.accounts.write() {
            a.push(account.clone());
        }
        account
    }

    /// Updates an account; `None` fields stay.
    pub fn update(
        &self,
        id: &str,
        username: Option<&str>,
        password: Option<&str>,
        role: Option<Role>,
        enabled: Option<bool>,
    ) {
        if let Ok(mut all) = self.accounts.write()
            && let Some(a) = all.iter_mut().find(|a| a.id == id)
        {
            if let Some(u) = username {
                a.username = u.to_string();
            }
            if let Some(p) = password {
                a.digest = digest(&a.username, p);
            }
            a.role = role.unwrap_or(a.role);
            a.enabled = enabled.unwrap_or(a.enabled);
        }
        self.invalidate();
    }

    pub fn delete(&self, id: &str) -> bool {
        let removed = self
            .accounts
            .write()
            .map(|mut all| {
                let before = all.len();
                all.retain(|a| a.id != id);
                before != all.len()
            })
            .unwrap_or(false);
        self.invalidate();
        removed
    }

    fn invalidate(&self) {
        if let Ok(mut c) = self.basic_cache.lock() {
            c.clear();
        }
    }

    /// Checks a username and password.
    pub fn verify(&self, username: &str, password: &str) -> Option<Principal> {
        let d = digest(username, password);
        let all = self.accounts.read().ok()?;
        let account = all
            .iter()
            .find(|a| a.username == username && a.enabled && a.digest == d)?;
        Some(Principal {
            username: account.username.clone(),
            role: account.role,
            session_id: None,
        })
    }

    /// Checks an `Authorization: Basic …` value, hashing only the first time a header is seen.
    pub fn verify_basic(&self, credentials_b64: &str) -> Option<Principal> {
        let cached = self.basic_cache.lock().ok()?.get(credentials_b64).cloned();
        if let Some(username) = cached {
            let all = self.accounts.read().ok()?;
            let account = all.iter().find(|a| a.username == username && a.enabled)?;
            return Some(Principal {
                username,
                role: account.role,
                session_id: None,
            });
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(credentials_b64.trim())
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (user, pass) = raw.split_once(':')?;
        let principal = self.verify(user, pass)?;
        if let Ok(mut cache) = self.basic_cache.lock() {
            if cache.len() >= BASIC_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(credentials_b64.to_string(), principal.username.clone());
        }
        Some(principal)
    }
}

/// A login session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub token: String,
    pub username: String,
    pub role: Role,
    pub created: DateTime<Utc>,
    last_used: tokio::time::Instant,
}

/// Sessions of one BMC, with an idle timeout.
pub struct SessionStore {
    sessions: Mutex<Vec<Session>>,
    next_id: AtomicU64,
    timeout_secs: AtomicU64,
    seed: u64,
}

/// Real BMCs cap concurrent sessions; this is a typical figure.
pub const DEFAULT_MAX_SESSIONS: usize = 64;

impl SessionStore {
    pub fn new(seed: u64) -> Self {
        Self {
            sessions: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            timeout_secs: AtomicU64::new(1800),
            seed,
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.load(Ordering::Relaxed))
    }

    pub fn set_timeout(&self, secs: u64) {
        self.timeout_secs.store(secs, Ordering::Relaxed);
    }

    fn expire(&self, sessions: &mut Vec<Session>) {
        let timeout = self.timeout();
        let now = tokio::time::Instant::now();
        sessions.retain(|s| now.saturating_duration_since(s.last_used) < timeout);
    }

    pub fn list(&self) -> Vec<Session> {
        let mut all = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        self.expire(&mut all);
        all.clone()
    }

    pub fn get(&self, id: &str) -> Option<Session> {
        self.list().into_iter().find(|s| s.id == id)
    }

    /// Opens a session unless `max` are already open.
    pub fn create(&self, principal: &Principal, now: DateTime<Utc>, max: usize) -> Option<Session> {
        let mut all = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        self.expire(&mut all);
        if all.len() >= max {
            return None;
        }
        let n = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let mut h = Sha256::new();
        h.update(self.seed.to_le_bytes());
        h.update(n.to_le_bytes());
        h.update(principal.username.as_bytes());
        let session = Session {
            id: n.to_string(),
            token: hex::encode(&h.finalize()[..16]),
            username: principal.username.clone(),
            role: principal.role,
            created: now,
            last_used: tokio::time::Instant::now(),
        };
        all.push(session.clone());
        Some(session)
    }

    /// Resolves a token and refreshes the session's idle timer.
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        let mut all = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        self.expire(&mut all);
        let s = all.iter_mut().find(|s| s.token == token)?;
        s.last_used = tokio::time::Instant::now();
        Some(Principal {
            username: s.username.clone(),
            role: s.role,
            session_id: Some(s.id.clone()),
        })
    }

    pub fn delete(&self, id: &str) -> bool {
        let mut all = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let before = all.len();
        all.retain(|s| s.id != id);
        before != all.len()
    }
}
