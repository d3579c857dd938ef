//! The HTTP vocabulary every area speaks: the error table ([`error`]), the wire types
//! ([`dto`]), the response headers ([`hardening`]) and the embedded web apps ([`web`]).
//! Nothing here knows a case, an alert or a device's session; every other folder may use it.

pub mod dto;
pub mod error;
pub mod hardening;
pub mod web;
