//! Typed identifiers. The store assigns them; they are never reused.

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// A person known to the system: an offender or a protected person.
    PersonId
);
id_type!(
    /// A registered device (ankle monitor, tracker, phone, smartwatch).
    DeviceId
);
id_type!(
    /// A case: one offender and the people an order protects from him.
    CaseId
);
id_type!(
    /// One court order (one version of it).
    OrderId
);
id_type!(
    /// A static zone attached to an order (home, work, school…).
    ZoneId
);
id_type!(
    /// A stored fix; assigned in commit order.
    FixId
);
id_type!(
    /// An alert (one episode of one rule for one order).
    AlertId
);
