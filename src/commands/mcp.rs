//! `capsule mcp`: an MCP server (rmcp) whose tools run code and tasks through the worker protocol.

mod bundles;
mod client;
mod http;
mod results;
mod schema;
mod server;
mod signature;
mod tools;

use anyhow::{Context, bail};
use capsule_packager::policy::{parse_compute, parse_ram, parse_timeout};
use capsule_runner::cli::args::{TrustArgs, cache_dir};
use capsule_runner::worker::{DEFAULT_MAX_SESSIONS, WorkerOptions};
use capsule_runner::{LocalCompiler, Runner};
use client::WorkerClient;
use rmcp::ServiceExt;
use server::CapsuleServer;
use std::path::PathBuf;
use std::sync::Arc;
use tools::Defaults;

/// Serve MCP (Model Context Protocol) tools that run code and tasks in Capsule sandboxes, for
/// coding agents (Claude Code, Claude Desktop, any MCP client).
///
/// Tools: `run_python` and `run_javascript` (a cell, stateless or in a session), `create_session`
/// / `close_session`, `write_file` / `read_file` / `list_files` on a session's /workspace,
/// `run_task` for bundles signed by a trusted key, and one tool per task of each `--bundle`.
/// Sessions are addressed by `session_id` and live in this process, so they outlive one client
/// connection. stdio is the default transport (stdout carries only MCP messages; logs go to
/// stderr); `--http` serves streamable HTTP instead.
#[derive(clap::Parser)]
#[command(after_help = MCP_HELP)]
pub struct McpCommand {
    /// Default wall-clock limit of a cell (`500ms`, `30s`, `5m`; at most 5m); a call may give
    /// its own `timeout`.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    timeout: String,

    /// Memory of a stateless cell, or of a whole session (`256MB`, `1GiB`; at most 2GiB).
    #[arg(long, value_name = "SIZE", default_value = "256MB")]
    ram: String,

    /// Fuel per cell: `LOW`, `MEDIUM` (about 1.5 s of CPython work), `HIGH` (at most), or a count.
    #[arg(long, value_name = "LEVEL", default_value = "MEDIUM")]
    compute: String,

    /// Let cells and sessions make HTTP(S) requests to these hosts (`api.example.com`,
    /// `*.example.com`, `*`; repeatable). Nothing is reachable otherwise.
    #[arg(long = "allow-host", value_name = "PATTERN")]
    allow_hosts: Vec<String>,

    /// Offer each task of this bundle as its own tool, named after the task (repeatable). The
    /// bundle must be signed by a trusted key (`--trust`).
    #[arg(long = "bundle", value_name = "FILE")]
    bundles: Vec<PathBuf>,

    /// Serve streamable HTTP at `http://ADDR/mcp` instead of stdio: a port (`8000`, meaning
    /// 127.0.0.1:8000) or `IP:PORT`. Non-loopback addresses need `--allow-remote`.
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,

    /// Accept a non-loopback `--http` address (anyone who can reach it can run code here).
    #[arg(long, requires = "http")]
    allow_remote: bool,

    /// Sessions open at once; opening one more closes the least recently used idle one.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_SESSIONS as u32)]
    max_sessions: u32,

    /// Idle time after which a session is closed (`90s`, `10m`).
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    session_ttl: String,

    /// Calls running at once (each holds an instance slot).
    #[arg(long, value_name = "N", default_value_t = 16)]
    max_in_flight: u32,

    #[command(flatten)]
    trust: TrustArgs,
}

const MCP_HELP: &str = "Examples:\n  claude mcp add capsule -- capsule mcp\n  \
capsule mcp --allow-host api.github.com --timeout 10s\n  \
capsule mcp --http 8000 --trust ci.key.pub --bundle tools.capsule\n\n\
Exit status:\n  0  the client disconnected (stdio)\n  2  usage or configuration error";

/// Most sessions and calls: each holds an instance slot whose memory is reserved up front.
const MAX_SLOTS: u32 = 256;

impl McpCommand {
    pub fn execute(self, compiler: Arc<dyn LocalCompiler>) -> anyhow::Result<u8> {
        let defaults = self.defaults()?;
        let session_ttl = parse_timeout(&self.session_ttl.clone().into())
            .map_err(|e| anyhow::anyhow!("invalid `--session-ttl`: {e}"))?;
        for (flag, value) in [
            ("--max-sessions", self.max_sessions),
            ("--max-in-flight", self.max_in_flight),
        ] {
            if value == 0 || value > MAX_SLOTS {
                bail!("`{flag}` must be between 1 and {MAX_SLOTS}, got {value}");
            }
        }
        let address = self
            .http
            .as_deref()
            .map(|text| http::parse_address(text, self.allow_remote))
            .transpose()?;
        let trust = self.trust.trust()?;
        let bundle_tools = bundles::load(
            &self.bundles,
            &trust,
            &CapsuleServer::builtin_names(&defaults),
        )?;

        // Built as `capsule worker` builds it: each session holds a slot besides the calls.
        let runner = Runner::pooled(
            cache_dir()?.join("store"),
            self.max_in_flight + self.max_sessions,
        )?
        .with_local_compiler(compiler);
        let options = WorkerOptions {
            max_in_flight: self.max_in_flight as usize,
            threads: None,
            request_timeout: None,
            trust,
            files_root: None,
            interpreters: Some(super::interpreters_for_worker()),
            max_sessions: self.max_sessions as usize,
            session_ttl,
        };
        let client = WorkerClient::start(runner, options).context("cannot start the worker")?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("capsule-mcp")
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let hello = runtime
            .block_on(client.call(serde_json::json!({"op": "hello"})))
            .context("the worker did not answer `hello`")?;
        if let Err(error) = within_worker_maxima(&defaults, &hello) {
            client.shut_down();
            return Err(error);
        }

        let server = CapsuleServer::new(client.clone(), defaults, bundle_tools);
        let allow_remote = self.allow_remote;
        let served = runtime.block_on(async move {
            match address {
                Some(address) => http::serve(server, address, allow_remote).await,
                None => serve_stdio(server).await,
            }
        });
        // The worker closes its sessions (deleting their workspaces) once its input ends.
        runtime.shutdown_background();
        client.shut_down();
        served.map(|()| 0)
    }

    /// The limits and grants of cells and sessions, judged as the worker will judge them.
    fn defaults(&self) -> anyhow::Result<Defaults> {
        let text = |s: &str| serde_json::Value::String(s.to_string());
        let flag = |name: &str, e: String| anyhow::anyhow!("invalid `--{name}`: {e}");
        parse_timeout(&text(&self.timeout)).map_err(|e| flag("timeout", e))?;
        parse_ram(&text(&self.ram)).map_err(|e| flag("ram", e))?;
        parse_compute(&text(&self.compute)).map_err(|e| flag("compute", e))?;
        if let Some(empty) = self.allow_hosts.iter().find(|h| h.trim().is_empty()) {
            bail!("invalid `--allow-host` `{empty}`: expected a host name, `*.domain` or `*`");
        }
        Ok(Defaults {
            timeout: self.timeout.clone(),
            ram: self.ram.clone(),
            compute: self.compute.clone(),
            allow_hosts: self.allow_hosts.clone(),
        })
    }
}

/// Refuses defaults the worker would refuse on every call, using the maxima its `hello` announces
/// (protocol version 2).
fn within_worker_maxima(defaults: &Defaults, hello: &serde_json::Value) -> anyhow::Result<()> {
    if hello["protocol"].as_u64() != Some(2) {
        bail!("the worker speaks protocol {}, not 2", hello["protocol"]);
    }
    let max = &hello["defaults"]["max"];
    let text = |s: &str| serde_json::Value::String(s.to_string());
    let too_high = |flag: &str, value: &str, most: &serde_json::Value| {
        anyhow::anyhow!("invalid `--{flag}` `{value}`: the most a cell may have is {most}")
    };
    let timeout = parse_timeout(&text(&defaults.timeout)).map_err(anyhow::Error::msg)?;
    if parse_timeout(&max["timeout"]).is_ok_and(|most| timeout > most) {
        return Err(too_high("timeout", &defaults.timeout, &max["timeout"]));
    }
    let ram = parse_ram(&text(&defaults.ram)).map_err(anyhow::Error::msg)?;
    if parse_ram(&max["ram"]).is_ok_and(|most| ram > most) {
        return Err(too_high("ram", &defaults.ram, &max["ram"]));
    }
    let fuel = parse_compute(&text(&defaults.compute))
        .map_err(anyhow::Error::msg)?
        .fuel();
    if parse_compute(&max["compute"]).is_ok_and(|most| fuel > most.fuel()) {
        return Err(too_high("compute", &defaults.compute, &max["compute"]));
    }
    Ok(())
}

/// Serves one client over stdin/stdout until it disconnects.
async fn serve_stdio(server: CapsuleServer) -> anyhow::Result<()> {
    let running = server
        .serve(rmcp::transport::stdio_pipes())
        .await
        .context("the MCP client did not initialize over stdio")?;
    running
        .waiting()
        .await
        .context("the MCP server stopped abnormally")?;
    Ok(())
}
