//! HAProxy (Debian's `haproxy`) on loopback in front of broker nodes, as a
//! deployment would put a load balancer: round robin, each node checked
//! through `GET /v1/sys/health` every 200 ms and taken out after two
//! failures. Its statistics count the requests that failed at the proxy.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running HAProxy.
#[derive(Debug)]
pub struct Haproxy {
    /// The address clients use: `http://127.0.0.1:<port>/v1`.
    pub base: String,
    stats: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

fn haproxy_binary() -> PathBuf {
    ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("HAProxy is not installed: the cluster tests need Debian's `haproxy` package (apt-get install haproxy)")
        })
}

impl Haproxy {
    /// Starts one in front of the nodes listening on `ports` (HTTP on
    /// 127.0.0.1); returns once it answers.
    pub fn start(ports: &[u16]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("broker-test-haproxy-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let port = super::free_port();
        let stats = super::free_port();
        let servers: String = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("    server node{} 127.0.0.1:{p} check\n", i + 1))
            .collect();
        let config = format!(
            "global\n    maxconn 1024\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n    retries 0\n\
             frontend api\n    bind 127.0.0.1:{port}\n    default_backend brokers\n\
             frontend stats\n    bind 127.0.0.1:{stats}\n    stats enable\n    stats uri /stats\n\
             backend brokers\n    balance roundrobin\n    option httpchk GET /v1/sys/health\n    http-check expect status 200\n\
             \x20   default-server inter 200ms fall 2 rise 2\n{servers}"
        );
        let file = dir.path().join("haproxy.cfg");
        std::fs::write(&file, config).unwrap_or_else(|e| panic!("cannot write {file:?}: {e}"));
        let check = Command::new(haproxy_binary())
            .args(["-c", "-f"])
            .arg(&file)
            .output()
            .unwrap_or_else(|e| panic!("cannot run haproxy: {e}"));
        assert!(
            check.status.success(),
            "haproxy refused its configuration: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new(haproxy_binary())
            .args(["-db", "-f"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start haproxy: {e}"));
        super::watchdog(child.id());
        let proxy = Self {
            base: format!("http://127.0.0.1:{port}/v1"),
            stats,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "haproxy did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        proxy
    }

    /// The statistics as CSV rows (`pxname`, `svname`, … as HAProxy names
    /// its columns), one map per row.
    pub async fn stats(&self) -> Vec<std::collections::HashMap<String, String>> {
        let text = reqwest::get(format!("http://127.0.0.1:{}/stats;csv", self.stats))
            .await
            .and_then(|r| r.error_for_status())
            .unwrap_or_else(|e| panic!("cannot read haproxy's statistics: {e}"))
            .text()
            .await
            .unwrap_or_else(|e| panic!("cannot read haproxy's statistics: {e}"));
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("# ")
            .split(',')
            .map(str::to_owned)
            .collect();
        lines
            .map(|line| {
                header
                    .iter()
                    .cloned()
                    .zip(line.split(',').map(str::to_owned))
                    .collect()
            })
            .collect()
    }

    /// Whether HAProxy counts the server `node<n>` (1-based) as up.
    pub async fn is_up(&self, node: usize) -> bool {
        let name = format!("node{node}");
        self.stats().await.iter().any(|row| {
            row.get("svname") == Some(&name)
                && row.get("status").is_some_and(|s| s.starts_with("UP"))
        })
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
