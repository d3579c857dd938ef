//! `bulwark demo`: a server on a fresh store, three cases in Seoul, and simulated people moving
//! through the real ingest doors — offenders' ankle monitors through the native batch API,
//! protected people's phones through the OsmAnd / Traccar Client door.
//!
//! The scenarios loop every few minutes so the map stays interesting:
//! 1. Mapo: the offender drives toward the protected person's home and stops ~60 m away
//!    (warning, then violation, within about 90 s of start), then leaves.
//! 2. Gangnam: the offender walks into the protected person's workplace zone.
//! 3. Jongno: the offender stays across the city; nothing should alert.

use anyhow::{Context, Result, bail};
use domain::LatLon;
use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde_json::{Value, json};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How often each simulated device reports, in seconds (vendors' pursuit mode is 15 s; the demo
/// reports faster so the map visibly moves).
const REPORT_EVERY_S: f64 = 2.0;

/// A path: waypoints with the time (seconds into the loop) at which each is reached.
struct Path {
    points: Vec<(f64, LatLon)>,
    period_s: f64,
}

impl Path {
    fn at(&self, t: f64) -> (LatLon, f64, f64) {
        let t = t % self.period_s;
        let pts = &self.points;
        for w in pts.windows(2) {
            let ((t0, a), (t1, b)) = (w[0], w[1]);
            if t >= t0 && t <= t1 {
                let f = if t1 > t0 { (t - t0) / (t1 - t0) } else { 0.0 };
                let d = a.distance_m(&b);
                let bearing = a.bearing_deg(&b);
                let speed = if t1 > t0 { d / (t1 - t0) } else { 0.0 };
                return (a.destination(bearing, d * f), speed, bearing);
            }
        }
        let last = pts.last().map(|p| p.1).unwrap_or(pts[0].1);
        (last, 0.0, 0.0)
    }
}

fn ll(lat: f64, lon: f64) -> LatLon {
    LatLon::new(lat, lon).unwrap_or_else(|_| unreachable!("demo coordinates are valid"))
}

struct Sim {
    name: &'static str,
    offender: Path,
    victim: Path,
    home: LatLon,
    work: LatLon,
}

fn scenarios() -> Vec<Sim> {
    // Mapo: home near Mangwon; the offender starts ~900 m north-east.
    let mapo_home = ll(37.5560, 126.9040);
    let mapo_start = mapo_home.destination(45.0, 900.0);
    let mapo_close = mapo_home.destination(45.0, 60.0);
    // Gangnam: workplace near Yeoksam; the offender walks in from the south.
    let gn_work = ll(37.5006, 127.0364);
    let gn_home = ll(37.4930, 127.0140);
    let gn_start = gn_work.destination(180.0, 700.0);
    // Jongno: far apart all the time.
    let jn_home = ll(37.5730, 126.9794);
    let jn_off = ll(37.5400, 127.0700);
    vec![
        Sim {
            name: "2026-서울-001 (Mapo)",
            offender: Path {
                points: vec![
                    (0.0, mapo_start),
                    (20.0, mapo_start),
                    (95.0, mapo_close),
                    (150.0, mapo_close),
                    (220.0, mapo_start),
                    (300.0, mapo_start),
                ],
                period_s: 300.0,
            },
            victim: Path {
                points: vec![(0.0, mapo_home), (300.0, mapo_home.destination(90.0, 30.0))],
                period_s: 300.0,
            },
            home: mapo_home,
            work: ll(37.5665, 126.9780),
        },
        Sim {
            name: "2026-서울-002 (Gangnam)",
            offender: Path {
                points: vec![
                    (0.0, gn_start),
                    (30.0, gn_start),
                    (150.0, gn_work.destination(180.0, 40.0)),
                    (200.0, gn_work.destination(180.0, 40.0)),
                    (330.0, gn_start),
                    (360.0, gn_start),
                ],
                period_s: 360.0,
            },
            victim: Path {
                points: vec![
                    (0.0, gn_home),
                    (180.0, gn_home.destination(60.0, 250.0)),
                    (360.0, gn_home),
                ],
                period_s: 360.0,
            },
            home: gn_home,
            work: gn_work,
        },
        Sim {
            name: "2026-서울-003 (Jongno)",
            offender: Path {
                points: vec![
                    (0.0, jn_off),
                    (200.0, jn_off.destination(300.0, 800.0)),
                    (400.0, jn_off),
                ],
                period_s: 400.0,
            },
            victim: Path {
                points: vec![
                    (0.0, jn_home),
                    (200.0, jn_home.destination(200.0, 400.0)),
                    (400.0, jn_home),
                ],
                period_s: 400.0,
            },
            home: jn_home,
            work: ll(37.5700, 126.9920),
        },
    ]
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST {path}: {status}: {v}");
        }
        Ok(v)
    }
}

fn id(v: &Value) -> Result<i64> {
    v["id"].as_i64().context("response without id")
}

struct Device {
    offender: bool,
    token_or_id: String,
    path_index: usize,
    seq: i64,
}

/// The demo's monitoring officer.
pub const OFFICER: &str = "officer";

/// The other demo accounts, one per role, all with the officer's password. `victim1` and
/// `offender1` are the parties of the first case.
pub const OTHER_ACCOUNTS: &[(&str, &str)] = &[
    ("victim1", "victim"),
    ("offender1", "offender"),
    ("police1", "police"),
    ("clerk1", "court_clerk"),
    ("judge1", "judge"),
    ("auditor1", "auditor"),
];

/// Seeds the cases through the HTTP API as the real roles would: the administrator
/// registers people, devices and cases and creates a monitoring officer assigned to them;
/// the officer registers the orders. Returns the simulated devices; afterwards `api` acts as
/// the officer.
async fn seed(api: &mut Api, sims: &[Sim], officer_password: &str) -> Result<Vec<Device>> {
    let now = jiff::Timestamp::now();
    let until = now + jiff::SignedDuration::from_hours(24 * 90);
    let mut devices = Vec::new();
    let officer = api
        .post(
            "/api/v1/accounts",
            json!({"username": OFFICER, "password": officer_password, "role": "monitoring_officer"}),
        )
        .await?;
    let officer_id = officer["account"]["id"]
        .as_i64()
        .context("account response without id")?;
    let mut cases = Vec::new();
    for (i, s) in sims.iter().enumerate() {
        let off = id(&api
            .post(
                "/api/v1/people",
                json!({"role": "offender", "display_name": format!("Offender {}", i + 1)}),
            )
            .await?)?;
        let vic = id(&api
            .post(
                "/api/v1/people",
                json!({"role": "protected", "display_name": format!("Protected person {}", i + 1)}),
            )
            .await?)?;
        let token = format!(
            "demo-ankle-monitor-token-{i}-{}",
            rand::rng().random::<u32>()
        );
        api.post(
            "/api/v1/devices",
            json!({"kind": "ankle_monitor", "protocol": "native", "hardware_id": format!("35000000000{i:04}"), "owner_id": off, "token": token}),
        )
        .await?;
        let phone_id = format!("demo-phone-{i}");
        api.post(
            "/api/v1/devices",
            json!({"kind": "victim_phone", "protocol": "osmand", "hardware_id": phone_id, "owner_id": vic, "token": phone_token(&phone_id)}),
        )
        .await?;
        let case = id(&api
            .post(
                "/api/v1/cases",
                json!({"reference": s.name, "offender_id": off, "protected_ids": [vic]}),
            )
            .await?)?;
        api.post(
            &format!("/api/v1/accounts/{officer_id}/assignments"),
            json!({"case_id": case}),
        )
        .await?;
        if i == 0 {
            for (username, role) in OTHER_ACCOUNTS {
                let person = match *role {
                    "victim" => Some(vic),
                    "offender" => Some(off),
                    _ => None,
                };
                api.post(
                    "/api/v1/accounts",
                    json!({"username": username, "password": officer_password, "role": role, "person_id": person}),
                )
                .await?;
            }
        }
        cases.push((case, i));
        devices.push(Device {
            offender: true,
            token_or_id: token,
            path_index: i,
            seq: 0,
        });
        devices.push(Device {
            offender: false,
            token_or_id: phone_id,
            path_index: i,
            seq: 0,
        });
    }
    let login = api
        .post(
            "/api/v1/auth/login",
            json!({"username": OFFICER, "password": officer_password}),
        )
        .await?;
    api.token = login["token"]
        .as_str()
        .context("log-in response without token")?
        .to_string();
    for (case, i) in cases {
        let s = &sims[i];
        api.post(
            "/api/v1/orders",
            json!({
                "case_id": case, "kind": "provisional_measure",
                "valid_from": now.to_string(), "valid_to": until.to_string(),
                "no_approach_m": 100.0, "warning_m": 500.0, "disclosure_radius_m": 600.0,
                "zones": [
                    {"kind": "home", "label": "Home", "shape": {"type": "circle", "lat": s.home.lat(), "lon": s.home.lon(), "radius_m": 150.0}},
                    {"kind": "work", "label": "Workplace", "shape": {"type": "polygon", "ring": [
                        [s.work.destination(315.0, 120.0).lat(), s.work.destination(315.0, 120.0).lon()],
                        [s.work.destination(45.0, 120.0).lat(), s.work.destination(45.0, 120.0).lon()],
                        [s.work.destination(135.0, 120.0).lat(), s.work.destination(135.0, 120.0).lon()],
                        [s.work.destination(225.0, 120.0).lat(), s.work.destination(225.0, 120.0).lon()]
                    ]}}
                ]
            }),
        )
        .await?;
    }
    Ok(devices)
}

/// Sends one report per device, forever.
/// The demo phone's device token (the phone doors require one).
fn phone_token(phone_id: &str) -> String {
    format!("{phone_id}-token-0001")
}

async fn simulate(api: Api, osmand: SocketAddr, sims: Vec<Sim>, mut devices: Vec<Device>) {
    let started = std::time::Instant::now();
    let noise = Normal::new(0.0, 5.0).unwrap_or_else(|_| unreachable!("valid sigma"));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(REPORT_EVERY_S));
    loop {
        tick.tick().await;
        let t = started.elapsed().as_secs_f64();
        let now = jiff::Timestamp::now();
        for d in &mut devices {
            let sim = &sims[d.path_index];
            let path = if d.offender {
                &sim.offender
            } else {
                &sim.victim
            };
            let (pos, speed, course) = path.at(t);
            let (n, e): (f64, f64) = {
                let mut r = rand::rng();
                (noise.sample(&mut r), noise.sample(&mut r))
            };
            let noisy = pos.destination(0.0, n).destination(90.0, e);
            d.seq += 1;
            let result = if d.offender {
                api.http
                    .post(format!("{}/api/v1/ingest/batch", api.base))
                    .bearer_auth(&d.token_or_id)
                    .json(&json!({"fixes": [{
                        "seq": d.seq, "time": now.to_string(), "lat": noisy.lat(), "lon": noisy.lon(),
                        "accuracy_m": 8.0, "speed_mps": speed, "course_deg": course, "source": "gnss"
                    }]}))
                    .send()
                    .await
            } else {
                api.http
                    .get(format!("http://{osmand}/"))
                    .query(&[
                        ("id", d.token_or_id.clone()),
                        ("token", phone_token(&d.token_or_id)),
                        ("lat", noisy.lat().to_string()),
                        ("lon", noisy.lon().to_string()),
                        ("timestamp", now.as_second().to_string()),
                        ("accuracy", "12".to_string()),
                        ("speed", (speed / 0.514_444).to_string()),
                        ("bearing", course.to_string()),
                        // The phone's battery drains slowly, so the console has health to show.
                        ("batt", format!("{:.0}", (90.0 - t / 60.0).max(15.0))),
                    ])
                    .send()
                    .await
            };
            match result {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => tracing::warn!(status = %r.status(), "simulated device report refused"),
                Err(e) => tracing::warn!(error = %e, "simulated device could not report"),
            }
        }
    }
}

pub async fn run(
    http_port: u16,
    data_dir: Option<PathBuf>,
    dispatch_grace_s: Option<i64>,
    stop: impl Future<Output = ()>,
) -> Result<()> {
    let temp = tempfile::Builder::new().prefix("bulwark-demo-").tempdir()?;
    let dir = data_dir.unwrap_or_else(|| temp.path().to_path_buf());
    let mut config = server::Config {
        data_dir: dir.clone(),
        bind: [127, 0, 0, 1].into(),
        http_port,
        osmand_port: Some(0),
        devices: server::config::DeviceListeners::ephemeral(),
        ..Default::default()
    };
    if let Some(g) = dispatch_grace_s {
        config.alerts.dispatch_grace_s = g.max(0);
    }
    let running = server::start(config).await?;
    let mut api = Api {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?,
        base: format!("http://{}", running.http_addr),
        token: running.admin_token.clone(),
    };
    let sims = scenarios();
    let officer_password: String = {
        let b: [u8; 8] = rand::random();
        b.iter().map(|x| format!("{x:02x}")).collect()
    };
    let devices = seed(&mut api, &sims, &officer_password).await?;
    let osmand = running.osmand_addr.context("demo needs the OsmAnd door")?;
    println!();
    println!("Bulwark demo is running. Open this in a browser:");
    println!();
    println!("    http://{}/", running.http_addr);
    println!();
    println!("Monitoring officer: username {OFFICER} password {officer_password}");
    println!(
        "Victim app (case 1): http://{}/app/  username victim1 password {officer_password}",
        running.http_addr
    );
    let others: Vec<&str> = OTHER_ACCOUNTS[1..].iter().map(|(u, _)| *u).collect();
    println!(
        "Other roles, same password: {} (one account per role)",
        others.join(", ")
    );
    println!(
        "Administrator token (accounts only, no case data): {}   (data in {})",
        running.admin_token,
        dir.display()
    );
    println!(
        "Three simulated cases move around Seoul; the first approach alerts within about 90 s."
    );
    println!("Press Ctrl+C to stop.");
    let sim = tokio::spawn(simulate(api, osmand, sims, devices));
    stop.await;
    sim.abort();
    println!("Stopping the demo…");
    running.shutdown().await;
    drop(temp);
    Ok(())
}
