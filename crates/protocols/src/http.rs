//! http placeholder
