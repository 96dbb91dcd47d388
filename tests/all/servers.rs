//! Real servers for the distribution tests, each a private process on 127.0.0.1 with a free port
//! and its own data directory, killed by pid when dropped: Debian's `docker-registry` (CNCF
//! distribution 2.8) and `nats-server` 2.9 with JetStream. `ci/services.sh` installs both.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (the listener is closed before the server binds it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a free port")
        .port()
}

/// Runs `program` under a small shell that kills it (SIGKILL, by pid) as soon as its stdin closes:
/// when [`stop`] drops the pipe, or when the test process ends in any way, including a server
/// held in a `static` that is never dropped. No server outlives the tests.
fn spawn_tied(program: &str, configure: impl FnOnce(&mut Command), log: &Path) -> Child {
    const WATCHDOG: &str = r#""$@" & pid=$!; read -r _; kill -9 "$pid"; wait "$pid""#;
    let log = std::fs::File::create(log).expect("server log");
    let mut command = Command::new("sh");
    command.args(["-c", WATCHDOG, "sh", program]);
    configure(&mut command);
    command
        .stdin(Stdio::piped())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {program} (ci/services.sh installs it): {e}"))
}

/// Stops a server started by [`spawn_tied`] and waits until it is gone.
fn stop(child: &mut Child) {
    drop(child.stdin.take());
    let _ = child.wait();
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not listen on 127.0.0.1:{port} within 20 s");
}

fn scratch_dir(name: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix(name)
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("server scratch dir")
        .keep()
}

/// A `docker-registry` on loopback, its storage and request log in a scratch directory.
pub struct Registry {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Registry {
    /// An anonymous registry.
    pub fn start() -> Self {
        Self::start_with_auth(None)
    }

    /// A registry requiring HTTP basic auth with this one user.
    pub fn start_with_basic_auth(user: &str, password: &str) -> Self {
        Self::start_with_auth(Some((user, password)))
    }

    fn start_with_auth(auth: Option<(&str, &str)>) -> Self {
        let dir = scratch_dir("registry-");
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.join("storage").display()
        );
        if let Some((user, password)) = auth {
            let htpasswd = dir.join("htpasswd");
            let status = Command::new("htpasswd")
                .args(["-Bbc"])
                .arg(&htpasswd)
                .args([user, password])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run htpasswd (ci/services.sh installs apache2-utils)");
            assert!(status.success(), "htpasswd failed");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: capsule-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.join("config.yml");
        std::fs::write(&config_path, config).expect("write registry config");
        let mut child = spawn_tied(
            "docker-registry",
            |command| {
                command.arg("serve").arg(&config_path);
            },
            &dir.join("registry.log"),
        );
        wait_for_port(port, &mut child, "docker-registry");
        Registry { child, port, dir }
    }

    /// `127.0.0.1:PORT`, as it appears in references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `oci://127.0.0.1:PORT/<path>`.
    pub fn reference(&self, path: &str) -> String {
        format!("oci://{}/{path}", self.host())
    }

    /// Everything the registry logged so far (one access-log line per request).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// The file holding blob `hex` in the registry's own storage.
    pub fn blob_file(&self, hex: &str) -> PathBuf {
        self.dir
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// A `nats-server -js` on loopback, its JetStream store in a scratch directory that survives
/// [`NatsServer::restart`].
pub struct NatsServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl NatsServer {
    pub fn start() -> Self {
        let dir = scratch_dir("nats-");
        let port = free_port();
        let child = Self::spawn(&dir, port);
        NatsServer { child, port, dir }
    }

    fn spawn(dir: &Path, port: u16) -> Child {
        let mut child = spawn_tied(
            "nats-server",
            |command| {
                command
                    .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
                    .arg(dir.join("jetstream"));
            },
            &dir.join("nats.log"),
        );
        wait_for_port(port, &mut child, "nats-server");
        child
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL, no clean shutdown) and starts it again on the same port and store.
    pub fn restart(&mut self) {
        stop(&mut self.child);
        self.child = Self::spawn(&self.dir, self.port);
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}
