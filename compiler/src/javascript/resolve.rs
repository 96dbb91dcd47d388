//! Where an import specifier leads, decided on the host at build time the way Node decides it
//! (oxc_resolver): relative paths with or without extensions, index files, `node_modules`,
//! `package.json` `exports`/`imports`/`main`/`module` with conditions. Built-in modules (`fs`,
//! `node:fs`) and the SDK (`capsule`, `@capsule-run/sdk`) are recognized first.

use oxc_resolver::{ResolveOptions, Resolver};
use std::path::{Path, PathBuf};

/// The SDK's module name in the guest; `@capsule-run/sdk` is an alias.
pub const SDK: &str = "capsule";
const SDK_ALIAS: &str = "@capsule-run/sdk";

/// Node built-ins the QuickJS guest provides (see guest-images/quickjs/src/node.js).
pub const AVAILABLE: &[&str] = &[
    "assert",
    "assert/strict",
    "buffer",
    "console",
    "crypto",
    "events",
    "fs",
    "fs/promises",
    "module",
    "os",
    "path",
    "path/posix",
    "perf_hooks",
    "process",
    "querystring",
    "stream",
    "stream/promises",
    "string_decoder",
    "timers",
    "timers/promises",
    "url",
    "util",
    "util/types",
];

/// Node built-ins a sandboxed task may not use at all.
pub const FORBIDDEN: &[&str] = &[
    "child_process",
    "cluster",
    "dgram",
    "dns",
    "dns/promises",
    "http",
    "http2",
    "https",
    "inspector",
    "net",
    "repl",
    "tls",
    "tty",
    "v8",
    "vm",
    "worker_threads",
];

/// Node built-ins the guest does not provide (yet).
const OTHER_NODE: &[&str] = &[
    "async_hooks",
    "constants",
    "diagnostics_channel",
    "domain",
    "punycode",
    "readline",
    "readline/promises",
    "stream/web",
    "sys",
    "trace_events",
    "wasi",
    "zlib",
];

/// What a specifier names.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    /// The Capsule SDK.
    Sdk,
    /// A Node built-in the guest provides (its name without `node:`).
    Builtin(String),
    /// A file of the project (or a package).
    File(PathBuf),
    /// Something the build cannot provide; the message says why.
    Missing(String),
}

/// Node's resolution, with the conditions of `import` and of `require`.
pub struct ModuleResolver {
    import: Resolver,
    require: Resolver,
}

impl Default for ModuleResolver {
    fn default() -> Self {
        Self::new()
    }
}

impl ModuleResolver {
    /// A resolver for projects on this machine.
    pub fn new() -> Self {
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let import = ResolveOptions {
            condition_names: strings(&["node", "import", "module", "default"]),
            main_fields: strings(&["module", "main"]),
            extensions: strings(&[".ts", ".mts", ".cts", ".js", ".mjs", ".cjs", ".json"]),
            // TypeScript projects write `./helpers.js` for `helpers.ts`.
            extension_alias: vec![
                (".js".into(), strings(&[".ts", ".js"])),
                (".mjs".into(), strings(&[".mts", ".mjs"])),
                (".cjs".into(), strings(&[".cts", ".cjs"])),
            ],
            ..ResolveOptions::default()
        };
        let require = ResolveOptions {
            condition_names: strings(&["node", "require", "default"]),
            main_fields: strings(&["main"]),
            ..import.clone()
        };
        let import = Resolver::new(import);
        let require = import.clone_with_options(require);
        ModuleResolver { import, require }
    }

    /// Where `specifier`, imported (or required, if `require`) from a file in `dir`, leads.
    pub fn resolve(&self, dir: &Path, specifier: &str, require: bool) -> Target {
        if specifier == SDK || specifier == SDK_ALIAS {
            return Target::Sdk;
        }
        if let Some(target) = builtin(specifier) {
            return target;
        }
        let resolver = if require { &self.require } else { &self.import };
        match resolver.resolve(dir, specifier) {
            Ok(resolution) => Target::File(resolution.full_path()),
            Err(oxc_resolver::ResolveError::NotFound(_)) if is_bare(specifier) => Target::Missing(
                "no such package in node_modules (is it installed? run `npm install`)".to_string(),
            ),
            Err(oxc_resolver::ResolveError::NotFound(_)) => Target::Missing(
                "no such file (tried the extensions .ts .mts .cts .js .mjs .cjs .json and index files)"
                    .to_string(),
            ),
            Err(e) => Target::Missing(e.to_string()),
        }
    }
}

fn is_bare(specifier: &str) -> bool {
    !(specifier.starts_with('.') || specifier.starts_with('/') || specifier.starts_with('#'))
}

/// A Node built-in named by `specifier` (`fs`, `node:fs`), if it is one.
pub fn builtin(specifier: &str) -> Option<Target> {
    let prefixed = specifier.strip_prefix("node:");
    let name = prefixed.unwrap_or(specifier);
    if AVAILABLE.contains(&name) {
        return Some(Target::Builtin(name.to_string()));
    }
    if FORBIDDEN.contains(&name) {
        return Some(Target::Missing(format!(
            "`{name}` is not available in the sandbox"
        )));
    }
    if OTHER_NODE.contains(&name) || prefixed.is_some() {
        return Some(Target::Missing(format!(
            "the Node built-in `{name}` is not supported by Capsule's JavaScript guest"
        )));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_and_sdk() {
        let resolver = ModuleResolver::new();
        assert_eq!(
            resolver.resolve(Path::new("/"), "@capsule-run/sdk", false),
            Target::Sdk
        );
        assert_eq!(
            resolver.resolve(Path::new("/"), "node:path", false),
            Target::Builtin("path".into())
        );
        assert!(matches!(
            resolver.resolve(Path::new("/"), "child_process", true),
            Target::Missing(m) if m.contains("not available in the sandbox")
        ));
    }
}
