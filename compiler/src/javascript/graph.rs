//! The module graph of a JavaScript task: every module reachable from the task file through
//! imports with string specifiers, resolved ([`super::resolve`]) and transpiled
//! ([`super::transpile`]) on the host at build time.

use super::resolve::{ModuleResolver, Target};
use super::transpile::{self, ImportKind, Kind};
use crate::Error;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// A module as the guest gets it.
#[derive(Debug, serde::Serialize)]
pub struct Module {
    /// `esm`, `cjs` or `json`.
    pub kind: &'static str,
    /// The code to evaluate.
    pub source: String,
    /// Specifier → what it names: another module's id, `node:NAME` for a built-in, `capsule` for
    /// the SDK, or `!message` for an import that throws `message` when reached.
    pub deps: BTreeMap<String, String>,
    /// Generated line → original line, for transpiled TypeScript.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<u32>>,
    /// For a CommonJS or JSON module that ES modules import only by name: those names. Its
    /// facade then runs it when the facade is evaluated, in Node's order; without them (a
    /// namespace import, the entry) the guest runs it when loading, to learn its exports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
}

/// The whole graph: modules by id (project-relative path, or absolute outside the project).
#[derive(Debug, serde::Serialize)]
pub struct Graph {
    /// The task file's id.
    pub entry: String,
    /// Every module.
    pub modules: BTreeMap<String, Module>,
    /// Imports inside packages that cannot be provided (they throw if reached).
    #[serde(skip)]
    pub deferred: Vec<String>,
}

/// Builds the graph of the task file `entry` (contents `entry_source`) in the project at `root`.
pub fn build(root: &Path, entry: &Path, entry_source: &[u8]) -> Result<Graph, Error> {
    let canonical = |path: &Path| {
        std::fs::canonicalize(path)
            .map_err(|e| Error::Io(format!("cannot resolve `{}`", path.display()), e))
    };
    let root = canonical(root)?;
    let entry = canonical(entry)?;
    let id_of = |path: &Path| -> String {
        crate::project::relative_name(&root, path)
            .unwrap_or_else(|| path.to_string_lossy().into_owned())
    };
    let resolver = ModuleResolver::new();
    let entry_id = id_of(&entry);
    let mut graph = Graph {
        entry: entry_id.clone(),
        modules: BTreeMap::new(),
        deferred: Vec::new(),
    };
    let mut queue: VecDeque<(PathBuf, String)> = VecDeque::from([(entry.clone(), entry_id)]);
    let mut seen = BTreeSet::new();
    // Names ES modules take from each module; `None` once any importer needs the namespace.
    let mut wanted: BTreeMap<String, Option<BTreeSet<String>>> = BTreeMap::new();
    while let Some((path, id)) = queue.pop_front() {
        if !seen.insert(id.clone()) {
            continue;
        }
        let bytes = if path == entry {
            entry_source.to_vec()
        } else {
            std::fs::read(&path).map_err(|e| Error::Io(format!("cannot read `{id}`"), e))?
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::Unsupported(format!("`{id}` is not valid UTF-8")))?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let out = transpile::transpile(&path, text).map_err(|e| {
            Error::Unsupported(format!(
                "{id}:{}:{}: syntax error: {}",
                e.line, e.column, e.message
            ))
        })?;
        let in_package = id.split('/').any(|part| part == "node_modules");
        let dir = path.parent().unwrap_or(Path::new("/"));
        let mut deps: BTreeMap<String, String> = BTreeMap::new();
        let mut want = |target_id: &str, names: &Option<Vec<String>>| {
            let entry = wanted
                .entry(target_id.to_string())
                .or_insert_with(|| Some(BTreeSet::new()));
            match (entry.as_mut(), names) {
                (Some(set), Some(names)) => set.extend(names.iter().cloned()),
                _ => *entry = None,
            }
        };
        let esm_import = |import: &transpile::Import| {
            out.kind == Kind::Esm && import.kind != ImportKind::Require
        };
        for import in &out.imports {
            if let Some(target_id) = deps.get(&import.specifier) {
                if esm_import(import) {
                    want(target_id, &import.names);
                }
                continue;
            }
            let require = import.kind == ImportKind::Require
                || (out.kind == Kind::Cjs && import.kind != ImportKind::Static);
            let place = if import.line > 0 {
                format!("{id}:{}:{}", import.line, import.column)
            } else {
                id.clone()
            };
            let target = match resolver.resolve(dir, &import.specifier, require) {
                Target::Sdk => super::resolve::SDK.to_string(),
                Target::Builtin(name) => format!("node:{name}"),
                Target::File(file) => {
                    let target_id = id_of(&file);
                    if esm_import(import) {
                        want(&target_id, &import.names);
                    }
                    queue.push_back((file, target_id.clone()));
                    target_id
                }
                Target::Missing(message) => {
                    if in_package && import.kind != ImportKind::Static {
                        graph
                            .deferred
                            .push(format!("{place}: `{}`: {message}", import.specifier));
                        format!(
                            "!cannot load `{}` (required at {place}): {message}",
                            import.specifier
                        )
                    } else {
                        let verb = match import.kind {
                            ImportKind::Require => "require",
                            _ => "import",
                        };
                        return Err(Error::Unsupported(format!(
                            "{place}: cannot {verb} `{}`: {message}",
                            import.specifier
                        )));
                    }
                }
            };
            deps.insert(import.specifier.clone(), target);
        }
        graph.modules.insert(
            id,
            Module {
                kind: out.kind.as_str(),
                source: out.code,
                deps,
                lines: out.lines,
                names: None,
            },
        );
    }
    for (id, module) in &mut graph.modules {
        if module.kind != "esm"
            && *id != graph.entry
            && let Some(Some(names)) = wanted.remove(id)
        {
            module.names = Some(names.into_iter().collect());
        }
    }
    Ok(graph)
}
