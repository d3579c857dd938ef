//! Who is who, compactly: for each person, the orders that involve them, the devices they
//! carry and their track.
//!
//! Most people have one order and one device, so those live inline; anything beyond spills
//! to the heap. Tracks sit in a dense vector rather than in the hash map so that the map's
//! spare capacity costs 32 bytes a slot, not 300. An idle case costs well under a kilobyte.

use crate::Roster;
use crate::fast::FastMap;
use crate::track::Track;
use domain::{DeviceId, PersonId};

const NO_ORDER: u32 = u32::MAX;
const NO_DEVICE: DeviceId = DeviceId(i64::MIN);

#[derive(Debug, Clone)]
struct Entry {
    track: u32,
    order0: u32,
    device0: DeviceId,
    more: Option<Box<More>>,
}

#[derive(Debug, Clone, Default)]
struct More {
    orders: Vec<u32>,
    devices: Vec<DeviceId>,
}

#[derive(Debug, Default)]
pub(crate) struct People {
    index: FastMap<PersonId, Entry>,
    device_owner: FastMap<DeviceId, PersonId>,
    tracks: Vec<Option<Track>>,
}

impl People {
    /// Rebuilds the indexes for a new roster, keeping the tracks of people still in it.
    pub fn rebuild(&mut self, roster: &Roster) {
        let mut orders: FastMap<PersonId, Vec<u32>> = FastMap::default();
        let mut devices: FastMap<PersonId, Vec<DeviceId>> = FastMap::default();
        self.device_owner.clear();
        self.device_owner.reserve(roster.devices.len());
        for (d, (p, _)) in &roster.devices {
            devices.entry(*p).or_default().push(*d);
            self.device_owner.insert(*d, *p);
        }
        for (i, mo) in roster.orders.iter().enumerate() {
            for p in std::iter::once(&mo.offender).chain(&mo.protected) {
                let e = orders.entry(*p).or_default();
                if !e.contains(&(i as u32)) {
                    e.push(i as u32);
                }
            }
        }
        let mut people: Vec<PersonId> = devices.keys().chain(orders.keys()).copied().collect();
        people.sort_unstable();
        people.dedup();
        let mut index: FastMap<PersonId, Entry> = FastMap::default();
        index.reserve(people.len());
        let mut tracks: Vec<Option<Track>> = Vec::with_capacity(people.len());
        for p in people {
            let old = self
                .index
                .get(&p)
                .and_then(|e| self.tracks.get_mut(e.track as usize))
                .and_then(Option::take);
            let mut os = orders.remove(&p).unwrap_or_default();
            let mut ds = devices.remove(&p).unwrap_or_default();
            ds.sort_unstable();
            let order0 = if os.is_empty() {
                NO_ORDER
            } else {
                os.remove(0)
            };
            let device0 = if ds.is_empty() {
                NO_DEVICE
            } else {
                ds.remove(0)
            };
            let more = (!os.is_empty() || !ds.is_empty()).then(|| {
                Box::new(More {
                    orders: os,
                    devices: ds,
                })
            });
            index.insert(
                p,
                Entry {
                    track: tracks.len() as u32,
                    order0,
                    device0,
                    more,
                },
            );
            tracks.push(old);
        }
        self.index = index;
        self.tracks = tracks;
    }

    pub fn owner_of(&self, device: DeviceId) -> Option<PersonId> {
        self.device_owner.get(&device).copied()
    }

    pub fn track(&self, p: PersonId) -> Option<&Track> {
        let e = self.index.get(&p)?;
        self.tracks.get(e.track as usize)?.as_ref()
    }

    /// The person's track slot (`None` when the person is not in the roster).
    pub fn track_slot(&mut self, p: PersonId) -> Option<&mut Option<Track>> {
        let e = self.index.get(&p)?;
        self.tracks.get_mut(e.track as usize)
    }

    /// Indices into the roster's orders of the orders that involve `p`.
    pub fn orders(&self, p: PersonId) -> impl Iterator<Item = u32> + '_ {
        let e = self.index.get(&p);
        let first = e.map(|e| e.order0).filter(|&o| o != NO_ORDER);
        let rest = e
            .and_then(|e| e.more.as_deref())
            .map(|m| m.orders.as_slice())
            .unwrap_or(&[]);
        first.into_iter().chain(rest.iter().copied())
    }

    /// The devices `p` carries, in id order.
    pub fn devices(&self, p: PersonId) -> impl Iterator<Item = DeviceId> + '_ {
        let e = self.index.get(&p);
        let first = e.map(|e| e.device0).filter(|&d| d != NO_DEVICE);
        let rest = e
            .and_then(|e| e.more.as_deref())
            .map(|m| m.devices.as_slice())
            .unwrap_or(&[]);
        first.into_iter().chain(rest.iter().copied())
    }
}
