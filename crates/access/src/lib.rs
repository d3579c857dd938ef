//! Who may do what in Bulwark, and the rules around accounts, retention and court orders.
//!
//! # Overview
//!
//! - [`authz`]: the roles and the one authorisation decision, [`authorize`]. Every request
//!   that touches case data goes through it; its answer carries what to audit.
//! - [`password`], [`session`], [`lockout`], [`totp`]: credentials. Argon2id PHC hashes,
//!   opaque tokens stored only as SHA-256, log-in back-off, RFC 6238 codes.
//! - [`retention`]: which fixes must be kept and which purged at a given time.
//! - [`workflow`]: petition → review → order versions → reminders → lapse.
//!
//! # Architecture Invariant
//!
//! Everything here is pure: time is always an argument, nothing reads a clock, touches a
//! database or the network. The only side effect is drawing random bytes for salts and
//! tokens, and each such function has a twin that takes the bytes as input.

pub mod authz;
pub mod lockout;
pub mod password;
pub mod retention;
pub mod session;
pub mod totp;
pub mod workflow;

pub use authz::{
    AccountId, Action, AuditNeed, Decision, DenyReason, Dispatch, Grants, OffenderProximity,
    PURPOSE_CODES, Precision, Principal, Resource, Role, audit_entry, authorize, may_be_dispatched,
    may_dispatch, purpose_ok,
};
pub use lockout::{Attempt, LockoutPolicy, LoginGuard, LoginThrottle, source_key};
pub use password::{PasswordError, hash_password, hash_password_with_salt, verify_password};
pub use retention::{
    KeepReason, RetentionPolicy, RetentionReport, RetentionSubject, Verdict, Window, decide_fix,
    plan,
};
pub use session::{SessionError, SessionPolicy, SessionRecord, SessionToken};
pub use workflow::{
    Conditions, Effect, Event, Notice, OrderVersion, Petitioner, Recipient, ReminderPolicy, State,
    Workflow, WorkflowError,
};
