//! Who wears which device and which orders are in force.

use domain::{DeviceId, DeviceKind, Order, PersonId};
use std::collections::HashMap;

/// An order in force, with the people it binds.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitoredOrder {
    pub order: Order,
    pub offender: PersonId,
    pub protected: Vec<PersonId>,
}

/// The engine's view of the world outside positions.
///
/// An order applies to *every* device its offender wears, including devices registered before
/// the order existed: devices are looked up by owner, never linked to orders one by one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Roster {
    pub devices: HashMap<DeviceId, (PersonId, DeviceKind)>,
    pub orders: Vec<MonitoredOrder>,
}

impl Roster {
    pub fn owner_of(&self, device: DeviceId) -> Option<PersonId> {
        self.devices.get(&device).map(|(p, _)| *p)
    }

    /// Indices into `orders` of the orders that bind or protect `person`.
    pub fn orders_involving(&self, person: PersonId) -> Vec<usize> {
        self.orders
            .iter()
            .enumerate()
            .filter(|(_, o)| o.offender == person || o.protected.contains(&person))
            .map(|(i, _)| i)
            .collect()
    }

    /// The devices a person carries.
    pub fn devices_of(&self, person: PersonId) -> impl Iterator<Item = DeviceId> + '_ {
        self.devices
            .iter()
            .filter(move |(_, (p, _))| *p == person)
            .map(|(d, _)| *d)
    }
}
