//! Positions and distances on the WGS-84 ellipsoid, approximated by a sphere.
//!
//! # Units
//! Degrees for latitude/longitude, metres for distances. The spherical (haversine) error is
//! below 0.5 % — well under GNSS noise at the 100 m – 2 km distances orders use.

use thiserror::Error;

/// Mean Earth radius in metres (IUGG).
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A distance in metres.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Meters(pub f64);

/// A validated WGS-84 position in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatLon {
    lat: f64,
    lon: f64,
}

#[derive(Debug, Error, PartialEq)]
pub enum CoordError {
    #[error("latitude {0} is not a number in [-90, 90]")]
    Latitude(f64),
    #[error("longitude {0} is not a number in [-180, 180]")]
    Longitude(f64),
    #[error("position (0, 0) is the null island placeholder devices send without a fix")]
    NullIsland,
}

impl LatLon {
    /// Validates ranges. (0, 0) is rejected: devices without a fix report it, and a victim or
    /// offender in the Gulf of Guinea is not a case this system serves.
    pub fn new(lat: f64, lon: f64) -> Result<Self, CoordError> {
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(CoordError::Latitude(lat));
        }
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(CoordError::Longitude(lon));
        }
        if lat == 0.0 && lon == 0.0 {
            return Err(CoordError::NullIsland);
        }
        Ok(LatLon { lat, lon })
    }

    pub fn lat(&self) -> f64 {
        self.lat
    }

    pub fn lon(&self) -> f64 {
        self.lon
    }

    /// Great-circle distance in metres.
    pub fn distance_m(&self, other: &LatLon) -> f64 {
        haversine_m(self.lat, self.lon, other.lat, other.lon)
    }

    /// Initial bearing from `self` to `other` in degrees clockwise from north, [0, 360).
    pub fn bearing_deg(&self, other: &LatLon) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dl = (other.lon - self.lon).to_radians();
        let y = dl.sin() * p2.cos();
        let x = p1.cos() * p2.sin() - p1.sin() * p2.cos() * dl.cos();
        (y.atan2(x).to_degrees() + 360.0) % 360.0
    }

    /// The point `distance_m` away along `bearing_deg`.
    pub fn destination(&self, bearing_deg: f64, distance_m: f64) -> LatLon {
        let d = distance_m / EARTH_RADIUS_M;
        let b = bearing_deg.to_radians();
        let p1 = self.lat.to_radians();
        let l1 = self.lon.to_radians();
        let p2 = (p1.sin() * d.cos() + p1.cos() * d.sin() * b.cos()).asin();
        let l2 = l1 + (b.sin() * d.sin() * p1.cos()).atan2(d.cos() - p1.sin() * p2.sin());
        let lon = ((l2.to_degrees() + 540.0) % 360.0) - 180.0;
        LatLon {
            lat: p2.to_degrees().clamp(-90.0, 90.0),
            lon,
        }
    }

    /// Local east/north offsets in metres of `other` relative to `self` (equirectangular
    /// projection; accurate to well under 1 % within tens of kilometres).
    pub fn local_en_m(&self, other: &LatLon) -> (f64, f64) {
        let east =
            (other.lon - self.lon).to_radians() * EARTH_RADIUS_M * self.lat.to_radians().cos();
        let north = (other.lat - self.lat).to_radians() * EARTH_RADIUS_M;
        (east, north)
    }
}

/// Haversine distance in metres between two points given in degrees.
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_out_of_range_and_null_island() {
        assert_eq!(LatLon::new(91.0, 0.5), Err(CoordError::Latitude(91.0)));
        assert!(LatLon::new(f64::NAN, 0.5).is_err());
        assert_eq!(LatLon::new(10.0, 181.0), Err(CoordError::Longitude(181.0)));
        assert_eq!(LatLon::new(0.0, 0.0), Err(CoordError::NullIsland));
        assert!(LatLon::new(37.5665, 126.978).is_ok());
    }

    #[test]
    fn seoul_city_hall_to_gangnam_station_is_about_8_9_km() {
        let city_hall = LatLon::new(37.5663, 126.9779).unwrap();
        let gangnam = LatLon::new(37.4979, 127.0276).unwrap();
        let d = city_hall.distance_m(&gangnam);
        assert!((8_600.0..9_000.0).contains(&d), "{d}");
    }

    proptest! {
        #[test]
        fn destination_then_distance_round_trips(
            lat in -60.0f64..60.0, lon in -179.0f64..179.0,
            bearing in 0.0f64..360.0, dist in 1.0f64..20_000.0,
        ) {
            let a = LatLon::new(lat, lon).unwrap();
            let b = a.destination(bearing, dist);
            let d = a.distance_m(&b);
            prop_assert!((d - dist).abs() < 0.01 + dist * 1e-9, "{} vs {}", d, dist);
        }

        #[test]
        fn distance_is_symmetric_and_non_negative(
            lat1 in -89.0f64..89.0, lon1 in -179.0f64..179.0,
            lat2 in -89.0f64..89.0, lon2 in -179.0f64..179.0,
        ) {
            let d1 = haversine_m(lat1, lon1, lat2, lon2);
            let d2 = haversine_m(lat2, lon2, lat1, lon1);
            prop_assert!(d1 >= 0.0);
            prop_assert!((d1 - d2).abs() < 1e-6);
        }
    }
}
