//! Who is calling and what they may see: the caller ([`auth`]), the one door to case data
//! ([`authz`]), accounts and assignments ([`accounts`]), the access log's key and head files
//! ([`audit_log`]), evidence bundles ([`evidence`]) and the retention purge ([`retention`]).

pub mod accounts;
pub mod audit_log;
pub mod auth;
pub mod authz;
pub mod evidence;
pub mod retention;
