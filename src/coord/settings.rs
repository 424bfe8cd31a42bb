//! One core's copy of the access settings (`requirepass`,
//! `protected-mode`): CONFIG SET changes every core's copy through
//! [`crate::coord::all`], so each core reads its own without sharing. The
//! policy that uses them (AUTH, the NOAUTH gate) is `command::auth`.

use std::cell::{Cell, RefCell};
use std::time::Instant;

use crate::config::Config;

/// One shard's copy of the access settings. CONFIG SET changes every
/// shard's copy, so each core reads its own without sharing.
pub struct AuthSettings {
    /// The default user's password; None means no password (nopass).
    password: RefCell<Option<Box<[u8]>>>,
    protected_mode: Cell<bool>,
    /// When this shard last logged a cross-protocol attempt.
    pub(crate) last_attack_log: Cell<Option<Instant>>,
}

impl AuthSettings {
    pub fn new(config: &Config) -> AuthSettings {
        let settings = AuthSettings {
            password: RefCell::new(None),
            protected_mode: Cell::new(config.protected_mode),
            last_attack_log: Cell::new(None),
        };
        settings.set_password(config.requirepass.as_bytes());
        settings
    }

    /// Sets `requirepass`; empty means none, as in Redis.
    pub fn set_password(&self, password: &[u8]) {
        *self.password.borrow_mut() = (!password.is_empty()).then(|| password.into());
    }

    /// Lends the password (None: the default user has none) to `check`.
    pub(crate) fn with_password<R>(&self, check: impl FnOnce(Option<&[u8]>) -> R) -> R {
        check(self.password.borrow().as_deref())
    }

    pub fn password_lossy(&self) -> String {
        self.password
            .borrow()
            .as_deref()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default()
    }

    #[inline]
    pub fn has_password(&self) -> bool {
        self.password.borrow().is_some()
    }

    pub fn protected_mode(&self) -> bool {
        self.protected_mode.get()
    }

    pub fn set_protected_mode(&self, on: bool) {
        self.protected_mode.set(on);
    }
}
