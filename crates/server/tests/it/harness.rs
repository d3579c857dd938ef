//! The one harness of the server's integration tests: a real server on port 0 over its own
//! data directory, a JSON client over real HTTP, the accounts every world needs, and the
//! bounded wait for what the engine does after the durable ack.

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// The password of every account a test creates.
pub const PASSWORD: &str = "a-long-enough-password";

/// A test server's configuration: loopback only, every port chosen by the system (no OsmAnd
/// door unless a test opens one), `admin` as the bootstrap administrator token.
pub fn config(dir: &Path, admin: &str) -> server::Config {
    server::Config {
        data_dir: dir.to_path_buf(),
        bind: [127, 0, 0, 1].into(),
        http_port: 0,
        osmand_port: None,
        admin_token: Some(admin.into()),
        devices: server::config::DeviceListeners::ephemeral(),
        ..Default::default()
    }
}

/// Starts a server on `dir` with the test configuration as `adjust` changes it.
pub async fn start_with(
    dir: &Path,
    admin: &str,
    adjust: impl FnOnce(&mut server::Config),
) -> server::Running {
    let mut config = config(dir, admin);
    adjust(&mut config);
    server::start(config).await.expect("server starts")
}

/// Starts a server on `dir` with the test configuration.
pub async fn start(dir: &Path, admin: &str) -> server::Running {
    start_with(dir, admin, |_| {}).await
}

/// No tracker listener at all (the tests that speak HTTP only).
pub fn without_tracker_listeners(config: &mut server::Config) {
    config.devices = server::config::DeviceListeners {
        gt06_port: None,
        h02_port: None,
        watch_port: None,
        teltonika_port: None,
        ..Default::default()
    };
}

/// The token a test reads the store with to inspect what the server stored (the store's
/// case-data reads take one; a test is no one's request, like the server's own reads).
pub fn inspect() -> store::Authorized {
    store::Authorized::system("test: inspecting what the server stored")
}

/// The server's HTTP address as a base URL.
pub fn base(r: &server::Running) -> String {
    format!("http://{}", r.http_addr)
}

/// A JSON client of one server.
#[derive(Clone)]
pub struct Http {
    pub http: reqwest::Client,
    pub base: String,
}

impl Http {
    pub fn new(r: &server::Running) -> Self {
        Http {
            http: reqwest::Client::new(),
            base: base(r),
        }
    }

    /// The same client against another run of the server (same data directory).
    pub fn rebase(self, r: &server::Running) -> Http {
        Http {
            base: base(r),
            ..self
        }
    }

    /// One request; the answer's status and body: its JSON, else its text as a string
    /// (`null` when empty). The live stream never ends: of it, the status only.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            "post" => self.http.post(url),
            "put" => self.http.put(url),
            "delete" => self.http.delete(url),
            _ => self.http.get(url),
        };
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let s = r.status();
        if r.headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"))
        {
            return (s, Value::Null);
        }
        let text = r.text().await.unwrap_or_default();
        if text.is_empty() {
            return (s, Value::Null);
        }
        (
            s,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call("post", path, Some(token), Some(body)).await
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call("get", path, Some(token), None).await
    }

    /// Posts and expects `201 Created`; the created record.
    pub async fn created_by(&self, token: &str, path: &str, body: Value) -> Value {
        let (s, v) = self.post(path, token, body).await;
        assert_eq!(s, StatusCode::CREATED, "{path}: {v}");
        v
    }

    /// Creates an account (by the administrator `admin`) with [`PASSWORD`]; its id.
    pub async fn new_account(
        &self,
        admin: &str,
        username: &str,
        role: &str,
        person: Option<i64>,
    ) -> i64 {
        let v = self
            .created_by(
                admin,
                "/api/v1/accounts",
                json!({"username": username, "password": PASSWORD, "role": role, "person_id": person}),
            )
            .await;
        v["account"]["id"].as_i64().unwrap()
    }

    /// Signs `username` in with `password` and returns the session token.
    pub async fn log_in_with(&self, username: &str, password: &str) -> String {
        let (s, v) = self
            .call(
                "post",
                "/api/v1/auth/login",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{username}: {v}");
        v["token"].as_str().unwrap().to_string()
    }

    /// Sends one fix from a native device (`token` is its device token), now.
    pub async fn send_fix(&self, token: &str, seq: i64, lat: f64, lon: f64, accuracy_m: f64) {
        let now = jiff::Timestamp::now().to_string();
        let (s, v) = self
            .post(
                "/api/v1/ingest/batch",
                token,
                json!({"fixes": [{"seq": seq, "time": now, "lat": lat, "lon": lon, "accuracy_m": accuracy_m}]}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
}

/// The client acting with one bearer token: the bootstrap administrator's, or a session's
/// after logging in (the tracker tests, which set up through the API and then speak TCP).
pub struct Api {
    pub h: Http,
    pub token: String,
}

impl std::ops::Deref for Api {
    type Target = Http;
    fn deref(&self) -> &Http {
        &self.h
    }
}

impl Api {
    pub fn new(r: &server::Running, token: &str) -> Self {
        Api {
            h: Http::new(r),
            token: token.into(),
        }
    }

    /// Posts and expects success; the answer.
    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (s, v) = self.h.post(path, &self.token, body).await;
        assert!(s.is_success(), "{path}: {s}");
        v
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.h.get(path, &self.token).await
    }

    /// The answer's body alone.
    pub async fn value(&self, path: &str) -> Value {
        self.get(path).await.1
    }
}

/// Polls until `f` gives something (the engine works asynchronously after the durable ack).
/// The bound is a limit on waiting, never an assertion about speed.
pub async fn poll<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..150 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Polls until `f` is true.
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    poll(what, || {
        let fut = f();
        async move { fut.await.then_some(()) }
    })
    .await
}
