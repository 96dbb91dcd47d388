//! The MCP server: one handler, cloned for every connection (stdio, or each HTTP session), all
//! sharing one in-process worker.

use super::bundles::BundleTool;
use super::client::WorkerClient;
use super::schema;
use super::tools::{self, Defaults};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use std::sync::Arc;

const INSTRUCTIONS: &str = "Capsule runs code in WebAssembly sandboxes with hard limits \
(time, memory, compute) and no access to the host. Use run_python / run_javascript for one-off \
code. For work spread over several calls, call create_session once, then pass its session_id to \
every run_* and file call (write_file / read_file / list_files reach the session's /workspace); \
close_session when done. Failed runs come back with isError and a typed `error.error_type`.";

/// What every connection shares.
struct Shared {
    client: Arc<WorkerClient>,
    defaults: Defaults,
    /// Built-in tools, then one per task of each `--bundle`.
    tools: Vec<Tool>,
    bundle_tools: Vec<BundleTool>,
}

/// The handler rmcp serves.
#[derive(Clone)]
pub struct CapsuleServer {
    shared: Arc<Shared>,
}

impl CapsuleServer {
    pub fn new(
        client: Arc<WorkerClient>,
        defaults: Defaults,
        bundle_tools: Vec<BundleTool>,
    ) -> Self {
        let mut tools = tools::catalog(&defaults);
        tools.extend(bundle_tools.iter().map(|t| t.tool.clone()));
        CapsuleServer {
            shared: Arc::new(Shared {
                client,
                defaults,
                tools,
                bundle_tools,
            }),
        }
    }

    /// The names of the built-in tools (bundle tasks may not take them).
    pub fn builtin_names(defaults: &Defaults) -> Vec<String> {
        tools::catalog(defaults)
            .into_iter()
            .map(|t| t.name.into_owned())
            .collect()
    }

    async fn call(&self, request: CallToolRequestParams) -> Result<CallToolResponse, ErrorData> {
        let shared = &self.shared;
        let name = request.name.as_ref();
        let Some(tool) = shared.tools.iter().find(|t| t.name == name) else {
            let known: Vec<&str> = shared.tools.iter().map(|t| t.name.as_ref()).collect();
            return Err(ErrorData::invalid_params(
                format!(
                    "unknown tool `{name}`; this server has {}",
                    known.join(", ")
                ),
                None,
            ));
        };
        let arguments = request.arguments.unwrap_or_default();
        schema::check(name, &tool.input_schema, &arguments)?;
        if let Some(result) = tools::call(&shared.client, &shared.defaults, name, &arguments).await
        {
            return result.map(CallToolResponse::from);
        }
        let Some(bundle_tool) = shared.bundle_tools.iter().find(|t| t.tool.name == name) else {
            return Err(ErrorData::invalid_params(
                format!("unknown tool `{name}`"),
                None,
            ));
        };
        let request = bundle_tool.request(&arguments)?;
        tools::envelope(&shared.client, request)
            .await
            .map(CallToolResponse::from)
    }
}

impl ServerHandler for CapsuleServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("capsule", env!("CARGO_PKG_VERSION")).with_title("Capsule"),
            )
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.shared.tools.clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.shared.tools.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // A client's `notifications/cancelled` drops the call, which sends the worker a `cancel`
        // for it (a cancelled session cell ends its session, as in the worker protocol).
        tokio::select! {
            result = self.call(request) => result,
            () = context.ct.cancelled() => Err(ErrorData::internal_error("cancelled by the client", None)),
        }
    }
}
