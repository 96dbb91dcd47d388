//! The module map the compiler sends on stdin (see ABI.md), and QuickJS's resolver and loader
//! over it. ES modules are compiled from their source; CommonJS and JSON modules are evaluated by
//! the `require` machinery of `node.js` and exposed to `import` through a small facade module
//! (`default` = `module.exports`, plus one named export per own key); Node built-ins likewise.

use rquickjs::loader::{ImportAttributes, Loader, Resolver};
use rquickjs::module::Declared;
use rquickjs::{Ctx, Error, Exception, Function, Module, Object, Result, Value};
use std::cell::RefCell;
use std::collections::HashMap;

/// One module of the map.
pub struct Entry {
    /// `esm`, `cjs` or `json`.
    pub kind: String,
    /// Its code.
    pub source: String,
    /// Specifier → target (a module id, `node:NAME`, `capsule`, or `!message`).
    pub deps: HashMap<String, String>,
    /// Generated line → original line (transpiled TypeScript).
    pub lines: Option<Vec<u32>>,
    /// For CommonJS/JSON: the only names ES modules import from it (see ABI.md).
    pub names: Option<Vec<String>>,
}

/// The whole map.
#[derive(Default)]
pub struct Map {
    /// The task file's id.
    pub entry: String,
    /// Modules by id.
    pub modules: HashMap<String, Entry>,
}

thread_local! {
    /// Kept for the life of the instance (part of the snapshot): dynamic `import()` and
    /// `require` at run time load from it.
    pub static MAP: RefCell<Map> = RefCell::new(Map::default());
}

/// Parses the module map.
pub fn parse(input: &str) -> std::result::Result<Map, String> {
    let value: serde_json::Value =
        serde_json::from_str(input).map_err(|e| format!("the module map is not valid JSON: {e}"))?;
    let entry = value["entry"]
        .as_str()
        .ok_or("the module map has no entry")?
        .to_string();
    let mut modules = HashMap::new();
    for (id, module) in value["modules"]
        .as_object()
        .ok_or("the module map has no modules")?
    {
        let text = |key: &str| module[key].as_str().unwrap_or_default().to_string();
        let deps = module["deps"]
            .as_object()
            .map(|deps| {
                deps.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let lines = module["lines"].as_array().map(|lines| {
            lines
                .iter()
                .map(|l| l.as_u64().unwrap_or(0) as u32)
                .collect()
        });
        let names = module["names"].as_array().map(|names| {
            names
                .iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()
        });
        modules.insert(
            id.clone(),
            Entry {
                kind: text("kind"),
                source: text("source"),
                deps,
                lines,
                names,
            },
        );
    }
    Ok(Map { entry, modules })
}

/// What `specifier` imported from `base` names, as the compiler resolved it.
pub fn resolve_dep(base: &str, specifier: &str) -> Option<String> {
    MAP.with(|map| {
        let map = map.borrow();
        if let Some(target) = map.modules.get(base).and_then(|m| m.deps.get(specifier)) {
            return Some(target.clone());
        }
        if map.modules.contains_key(specifier) {
            return Some(specifier.to_string());
        }
        None
    })
}

/// The kind and (for JSON) source of a module.
pub fn kind_of(id: &str) -> Option<String> {
    MAP.with(|map| map.borrow().modules.get(id).map(|m| m.kind.clone()))
}

/// The source of a module, taken out of the map: once compiled it is not needed again, and
/// dropping it keeps it out of the snapshot. Modules loaded only at run time keep theirs until then.
pub fn take_source(id: &str) -> Option<String> {
    MAP.with(|map| {
        map.borrow_mut()
            .modules
            .get_mut(id)
            .map(|m| std::mem::take(&mut m.source))
    })
}

/// The original line of generated line `line` of module `id`, or -1 if it was not transpiled.
pub fn original_line(id: &str, line: u32) -> i64 {
    MAP.with(|map| {
        map.borrow()
            .modules
            .get(id)
            .and_then(|m| m.lines.as_ref())
            .map_or(-1, |lines| {
                let index = (line as usize).saturating_sub(1).min(lines.len().saturating_sub(1));
                lines.get(index).map_or(-1, |l| i64::from(*l))
            })
    })
}

/// Compiles a CommonJS module into its wrapper function. The wrapper opens on the module's first
/// line, so line numbers in stack traces stay those of the file.
pub fn compile_cjs<'js>(ctx: &Ctx<'js>, id: &str) -> Result<Function<'js>> {
    let Some(source) = take_source(id) else {
        return Err(Exception::throw_message(ctx, &format!("no module `{id}` in the build")));
    };
    let body = match source.strip_prefix("#!") {
        Some(rest) => format!("//{rest}"),
        None => source,
    };
    let wrapped =
        format!("(function (exports, require, module, __filename, __dirname) {{{body}\n}})");
    let mut options = rquickjs::context::EvalOptions::default();
    options.strict = false;
    options.filename = Some(id.to_string());
    ctx.eval_with_options(wrapped, options)
}

fn is_identifier(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// An ES module re-exporting what `getter` returns: `default`, and `names`.
fn facade(getter: &str, names: &[String]) -> String {
    let mut source = format!("const m = {getter};\nexport default m;\n");
    for (i, key) in names.iter().enumerate() {
        if key != "default" && is_identifier(key) {
            source.push_str(&format!("const e{i} = m[\"{key}\"];\nexport {{ e{i} as {key} }};\n"));
        }
    }
    source
}

/// The own keys of `value`, to re-export.
fn keys_of(value: &Value<'_>) -> Result<Vec<String>> {
    let mut names = Vec::new();
    if let Some(object) = value.as_object() {
        for key in object.keys::<String>() {
            names.push(key?);
        }
    }
    Ok(names)
}

fn names_of(id: &str) -> Option<Vec<String>> {
    MAP.with(|map| map.borrow().modules.get(id).and_then(|m| m.names.clone()))
}

/// The `require` machinery of node.js (`globalThis.__capsule_modules`).
fn machinery<'js>(ctx: &Ctx<'js>) -> Result<Object<'js>> {
    ctx.globals().get("__capsule_modules")
}

/// Resolves imports through the map.
pub struct MapResolver;

impl Resolver for MapResolver {
    fn resolve<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        base: &str,
        name: &str,
        _attributes: Option<ImportAttributes<'js>>,
    ) -> Result<String> {
        let target = resolve_dep(base, name).or_else(|| {
            // The guest's own modules (the SDK, node.js) import built-ins by name.
            (name == "capsule" || name.starts_with("node:")).then(|| name.to_string())
        });
        match target {
            Some(target) if target.starts_with('!') => {
                Err(Exception::throw_message(ctx, &target[1..]))
            }
            Some(target) => Ok(target),
            None => Err(Exception::throw_message(
                ctx,
                &format!(
                    "cannot import `{name}` from `{base}`: it is not part of the task's module graph (only imports written as string literals are built in)"
                ),
            )),
        }
    }
}

/// Loads modules from the map.
pub struct MapLoader;

impl Loader for MapLoader {
    fn load<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        name: &str,
        _attributes: Option<ImportAttributes<'js>>,
    ) -> Result<Module<'js, Declared>> {
        if let Some(builtin) = name.strip_prefix("node:") {
            let get: Function = machinery(ctx)?.get("builtin")?;
            let value: Value = get.call((builtin,))?;
            let getter = format!("globalThis.__capsule_modules.builtin({})", quote(builtin));
            return Module::declare(ctx.clone(), name, facade(&getter, &keys_of(&value)?));
        }
        match kind_of(name).as_deref() {
            Some("esm") => {
                let source = take_source(name).unwrap_or_default();
                let module = Module::declare(ctx.clone(), name, source)?;
                // `import.meta.url` as Node has it: a file URL of the module (ids are relative to
                // the project root, which the guest sees as `/`).
                let path = if name.starts_with('/') {
                    name.to_string()
                } else {
                    format!("/{name}")
                };
                let meta = module.meta()?;
                meta.set("url", format!("file://{path}"))?;
                let dirname = match path.rsplit_once('/') {
                    Some((dir, _)) if !dir.is_empty() => dir.to_string(),
                    _ => "/".to_string(),
                };
                meta.set("dirname", dirname)?;
                meta.set("filename", path)?;
                Ok(module)
            }
            Some(_) => {
                let getter = format!("globalThis.__capsule_modules.requireId({})", quote(name));
                // Imported by name only: the module runs when its facade is evaluated, in
                // order. Otherwise it runs now, so that its keys can be exported.
                let names = match names_of(name) {
                    Some(names) => names,
                    None => {
                        let require: Function = machinery(ctx)?.get("requireId")?;
                        let value: Value = require.call((name,))?;
                        keys_of(&value)?
                    }
                };
                Module::declare(ctx.clone(), name, facade(&getter, &names))
            }
            None => Err(Error::new_loading(name)),
        }
    }
}

fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_string())
}
