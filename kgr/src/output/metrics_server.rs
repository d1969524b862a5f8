//! `kgr monitor --listen`: serves `/metrics` over HTTP (tiny_http) while
//! the monitor runs.

use anyhow::{anyhow, Result};
use tiny_http::{Header, Response, Server};

/// A bound listener; `serve` answers until the process exits.
pub struct MetricsServer {
    server: Server,
}

impl MetricsServer {
    pub fn bind(addr: &str) -> Result<MetricsServer> {
        let server = Server::http(addr).map_err(|e| anyhow!("listening on {addr}: {e}"))?;
        Ok(MetricsServer { server })
    }

    pub fn addr(&self) -> String {
        self.server
            .server_addr()
            .to_ip()
            .map_or_else(|| "?".to_owned(), |a| a.to_string())
    }

    /// Answers `GET /metrics` with what `render` makes at that moment;
    /// anything else is 404, and a failed render is 500 with its reason.
    pub fn serve(self, render: impl Fn() -> Result<String>) {
        let text_format =
            Header::from_bytes("Content-Type", "text/plain; version=0.0.4; charset=utf-8").ok();
        for request in self.server.incoming_requests() {
            let path = request.url().split('?').next().unwrap_or("");
            let response = if path == "/metrics" {
                match render() {
                    Ok(text) => {
                        let mut response = Response::from_string(text);
                        if let Some(header) = text_format.clone() {
                            response.add_header(header);
                        }
                        response
                    }
                    Err(err) => {
                        Response::from_string(format!("kgr: {err:#}\n")).with_status_code(500)
                    }
                }
            } else {
                Response::from_string("kgr: only /metrics is served here\n").with_status_code(404)
            };
            let _ = request.respond(response);
        }
    }
}
