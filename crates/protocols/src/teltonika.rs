//! teltonika placeholder
