//! Decoding the OsmAnd / Traccar Client HTTP formats into fixes.

use crate::error::{ApiError, ErrorCode};
use crate::ingest::RawFix;
use domain::{FixFlags, FixSource, UnixMicros};
use serde::Deserialize;

/// One decoded request.
#[derive(Debug, PartialEq)]
pub struct Report {
    pub id: String,
    /// `None` when the request carried no coordinates.
    pub fix: Option<RawFix>,
}

const KNOT_MPS: f64 = 0.514_444;

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidField, msg)
}

fn num(key: &str, v: &str) -> Result<f64, ApiError> {
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| bad(format!("{key}: {v:?} is not a number")))
}

/// Unix seconds, Unix milliseconds (≥ 2^31), ISO 8601 with `T`, or `yyyy-MM-dd HH:mm:ss` (UTC).
pub fn parse_time(v: &str) -> Result<UnixMicros, ApiError> {
    let v = v.trim();
    if let Ok(n) = v.parse::<i64>() {
        return Ok(if n >= 1 << 31 {
            UnixMicros::from_millis(n)
        } else {
            UnixMicros::from_secs(n)
        });
    }
    if let Ok(t) = v.parse::<jiff::Timestamp>() {
        return Ok(UnixMicros(t.as_microsecond()));
    }
    if let Ok(dt) = jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", v)
        && let Ok(z) = dt.to_zoned(jiff::tz::TimeZone::UTC)
    {
        return Ok(UnixMicros(z.timestamp().as_microsecond()));
    }
    Err(bad(format!(
        "timestamp: {v:?} is not a time Bulwark understands"
    )))
}

/// The query-string (or form body) format.
pub fn parse_query(text: &str, received: UnixMicros) -> Result<Report, ApiError> {
    let mut id = None;
    let (mut lat, mut lon) = (None, None);
    let mut fix = RawFix {
        device_time: received,
        lat: 0.0,
        lon: 0.0,
        accuracy_m: None,
        speed_mps: None,
        course_deg: None,
        altitude_m: None,
        source: FixSource::Gnss,
        flags: FixFlags::default(),
        seq: None,
    };
    for (k, v) in form_urlencoded::parse(text.as_bytes()) {
        match k.as_ref() {
            "id" | "deviceid" => id = Some(v.into_owned()),
            "lat" => lat = Some(num("lat", &v)?),
            "lon" => lon = Some(num("lon", &v)?),
            "location" => {
                let (a, b) = v
                    .split_once(',')
                    .ok_or_else(|| bad("location: expected `lat,lon`"))?;
                lat = Some(num("location", a)?);
                lon = Some(num("location", b)?);
            }
            "timestamp" => fix.device_time = parse_time(&v)?,
            "speed" => fix.speed_mps = Some(num("speed", &v)? * KNOT_MPS),
            "bearing" | "heading" => fix.course_deg = Some(num("bearing", &v)?),
            "altitude" => fix.altitude_m = Some(num("altitude", &v)?),
            "accuracy" => fix.accuracy_m = Some(num("accuracy", &v)?).filter(|a| *a > 0.0),
            "valid" if !(v == "true" || v == "1") => {
                fix.flags = fix.flags.with(FixFlags::NO_GNSS_FIX);
            }
            _ => {}
        }
    }
    let id = id
        .filter(|s| !s.is_empty() && s.len() <= 64)
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidField, "id: missing device identifier"))?;
    let fix = match (lat, lon) {
        (Some(lat), Some(lon)) => Some(RawFix { lat, lon, ..fix }),
        (None, None) => None,
        _ => return Err(bad("lat/lon: both or neither must be given")),
    };
    Ok(Report { id, fix })
}

#[derive(Deserialize)]
struct JsonBody {
    device_id: Option<String>,
    location: Option<JsonLocation>,
}

#[derive(Deserialize)]
struct JsonLocation {
    timestamp: Option<String>,
    coords: JsonCoords,
}

#[derive(Deserialize)]
struct JsonCoords {
    latitude: f64,
    longitude: f64,
    accuracy: Option<f64>,
    speed: Option<f64>,
    heading: Option<f64>,
    altitude: Option<f64>,
}

/// The JSON format (Transistorsoft background-geolocation layout) of the newer Traccar Client.
pub fn parse_json(body: &[u8]) -> Result<Report, ApiError> {
    let b: JsonBody = crate::error::parse_json(body)?;
    let id = b
        .device_id
        .filter(|s| !s.is_empty() && s.len() <= 64)
        .ok_or_else(|| bad("device_id: missing device identifier"))?;
    let Some(loc) = b.location else {
        return Ok(Report { id, fix: None });
    };
    let time = loc
        .timestamp
        .as_deref()
        .ok_or_else(|| bad("location.timestamp: missing"))
        .and_then(parse_time)?;
    // Negative speed or heading means unknown in this format.
    let known = |v: Option<f64>| v.filter(|x| *x >= 0.0);
    Ok(Report {
        id,
        fix: Some(RawFix {
            device_time: time,
            lat: loc.coords.latitude,
            lon: loc.coords.longitude,
            accuracy_m: known(loc.coords.accuracy).filter(|a| *a > 0.0),
            speed_mps: known(loc.coords.speed),
            course_deg: known(loc.coords.heading),
            altitude_m: loc.coords.altitude,
            source: FixSource::Gnss,
            flags: FixFlags::default(),
            seq: None,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_forms_from_traccar_vectors() {
        let r = parse_query(
            "id=902064&lat=42.06288&lon=-88.23412&timestamp=2016-01-27T18%3A55%3A47Z&hdop=6.0&altitude=224.0&speed=0.0",
            UnixMicros(0),
        )
        .unwrap();
        assert_eq!(r.id, "902064");
        let f = r.fix.unwrap();
        assert_eq!(f.device_time, UnixMicros::from_secs(1_453_920_947));
        assert_eq!((f.lat, f.lon), (42.06288, -88.23412));
        let r = parse_query(
            "id=1&timestamp=1442068686579&location=60.0,30.0",
            UnixMicros(0),
        )
        .unwrap();
        assert_eq!(
            r.fix.unwrap().device_time,
            UnixMicros::from_millis(1_442_068_686_579)
        );
        let r = parse_query(
            "lat=49.6&lon=6.1&timestamp=2014-06-04+09%3A10%3A11&id=3538",
            UnixMicros(0),
        )
        .unwrap();
        assert_eq!(
            r.fix.unwrap().device_time,
            UnixMicros::from_secs(1_401_873_011)
        );
        // No id: refused, as Traccar does.
        assert!(parse_query("timestamp=1377177267&lat=60.0&lon=30.0", UnixMicros(0)).is_err());
        // No coordinates: a report without a fix.
        assert_eq!(
            parse_query("id=5&batt=80", UnixMicros(0)).unwrap().fix,
            None
        );
        assert!(parse_query("id=5&lat=abc&lon=1", UnixMicros(0)).is_err());
    }

    #[test]
    fn json_form_from_traccar_client() {
        let body = br#"{"location":{"timestamp":"2025-06-15T13:45:12.862Z","coords":{"latitude":37.4219983,"longitude":-122.084,"accuracy":5,"speed":0,"heading":-1,"altitude":5},"is_moving":false,"odometer":0,"event":"motionchange","battery":{"level":1,"is_charging":false},"activity":{"type":"still"},"extras":{}},"device_id":"123"}"#;
        let r = parse_json(body).unwrap();
        assert_eq!(r.id, "123");
        let f = r.fix.unwrap();
        assert_eq!(f.course_deg, None);
        assert_eq!(f.accuracy_m, Some(5.0));
        assert!(parse_json(b"{not json").is_err());
    }
}
