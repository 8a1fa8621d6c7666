//! The REST application served on a real loopback socket, and a client holding an
//! API key for it: what a browser or a script sees, connection handling included.

use runbook_core::{Actor, Service};
use runbook_domain::Role;
use runbook_server::{app, AppState};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Server {
    base: String,
    key: String,
    client: reqwest::Client,
    task: JoinHandle<()>,
    _shutdown: watch::Sender<bool>,
}

impl Server {
    /// Serves `service` on 127.0.0.1 (any free port) to a client with a key of `role`.
    pub async fn start(service: &Service, role: Role) -> anyhow::Result<Server> {
        let key = service
            .create_api_key(&Actor::system(), "bench", role)
            .await?
            .token;
        let (shutdown_tx, shutdown) = watch::channel(false);
        let router = app(AppState::new(service.clone(), shutdown), None);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Server {
            base,
            key,
            client: reqwest::Client::new(),
            task,
            _shutdown: shutdown_tx,
        })
    }

    /// GET `path`, failing on any status but 2xx; the body is read but not parsed.
    pub async fn fetch(&self, path: &str) -> anyhow::Result<bytes::Bytes> {
        let request = self.client.get(format!("{}{path}", self.base));
        self.send(path, request).await
    }

    /// GET `path` as JSON.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(serde_json::from_slice(&self.fetch(path).await?)?)
    }

    /// POST `body` to `path`, returning the JSON answer.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let request = self.client.post(format!("{}{path}", self.base)).json(body);
        Ok(serde_json::from_slice(&self.send(path, request).await?)?)
    }

    async fn send(
        &self,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<bytes::Bytes> {
        let response = request.header("x-api-key", &self.key).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        anyhow::ensure!(
            status.is_success(),
            "{path}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        Ok(body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}
