//! Capsule's JavaScript guest: QuickJS-ng (through rquickjs) as a wasm32-wasip1 reactor that
//! implements the guest ABI of `guest-images/ABI.md`.
//!
//! - `wizer.initialize` (build time, under Wizer): create the runtime and context, load the SDK
//!   (`sdk.js`, importable as `capsule` or `@capsule-run/sdk`), evaluate the user's module read from
//!   stdin, and print the task table on stdout. Wizer snapshots the result.
//! - `run` (run time, once per fresh instance of the snapshot): canonical-ABI lowering of
//!   `run(task-name, args-json) -> result<string, task-error>`.
//!
//! Everything JavaScript-level lives in `sdk.js`; this file moves bytes across the ABI, gives the SDK
//! the few host services it needs (stdio, randomness, environment, files) and resets the wasi-libc
//! caches that the snapshot froze.

mod modules;
mod native;

use rquickjs::{
    Array, Context, Ctx, Error, Exception, Function, Module, Object, Persistent, Promise, Runtime,
    Value, context::EvalOptions,
};
use std::alloc::{Layout, alloc, realloc};
use std::cell::RefCell;
use std::io::{Read, Write};

const SDK_SOURCE: &str = include_str!("sdk.js");
/// Node built-ins, web APIs and the event loop (timers, `process.nextTick`, `require`).
const NODE_SOURCE: &str = include_str!("node.js");
const NODE_MODULE: &str = "capsule:node";
/// The SDK's module name, and the name the published Capsule SDK used (accepted as an alias).
const SDK_MODULE: &str = "capsule";
const SDK_ALIAS: &str = "@capsule-run/sdk";

unsafe extern "C" {
    // In the wasi-libc that Rust links (wasi-sdk 30): drop the cached preopen table and environ so
    // that the next use re-reads what this run was granted.
    fn __wasilibc_reset_preopens();
    fn __wasilibc_deinitialize_environ();
}

#[link(wasm_import_module = "wasi_snapshot_preview1")]
unsafe extern "C" {
    #[link_name = "random_get"]
    fn wasi_random_get(buf: *mut u8, len: usize) -> u16;
}

/// A canonical-ABI string: pointer and length in linear memory.
#[repr(C)]
struct AbiString {
    ptr: *mut u8,
    len: usize,
}

/// What the host writes for `call-task`'s `result<string, task-error>`: a one-byte
/// discriminant, then the strings from offset 4 (see ABI.md).
#[repr(C)]
struct CallTaskReturn {
    is_err: u8,
    strings: [AbiString; 3],
}

#[link(wasm_import_module = "$root")]
unsafe extern "C" {
    /// Runs a sub-task in a fresh instance, under its manifest policy narrowed by this task's.
    #[link_name = "call-task"]
    fn import_call_task(
        name: *const u8,
        name_len: usize,
        args: *const u8,
        args_len: usize,
        ret: *mut CallTaskReturn,
    );
}

/// `call-task`: runs a sub-task. `Ok(result_json)` or `Err([error_type, message, traceback])`.
fn call_task(name: &str, args_json: &str) -> Result<String, [String; 3]> {
    let mut ret = CallTaskReturn {
        is_err: 0,
        strings: [const {
            AbiString {
                ptr: std::ptr::null_mut(),
                len: 0,
            }
        }; 3],
    };
    // SAFETY: the strings outlive the call; `ret` is valid for writes.
    unsafe {
        import_call_task(
            name.as_ptr(),
            name.len(),
            args_json.as_ptr(),
            args_json.len(),
            &mut ret,
        )
    };
    let [a, b, c] = ret.strings;
    // SAFETY: the host wrote a valid `CallTaskReturn` whose strings it allocated with
    // `cabi_realloc(null, 0, 1, len)`; each is taken once.
    let take = |s: AbiString| unsafe { take_string(s.ptr, s.len) };
    if ret.is_err == 0 {
        Ok(take(a))
    } else {
        Err([take(a), take(b), take(c)])
    }
}

/// One HTTP request (and its redirects) over wasi:http; the runner checks each against the
/// task's `allowed_hosts`.
fn http_fetch(request_json: &str) -> Result<String, [String; 3]> {
    capsule_guest_http::fetch(request_json)
}

/// An import's outcome for the SDK: `{ok}` or `{error_type, message, traceback}`.
fn import_outcome<'js>(
    ctx: Ctx<'js>,
    outcome: Result<String, [String; 3]>,
) -> rquickjs::Result<Object<'js>> {
    let object = Object::new(ctx)?;
    match outcome {
        Ok(text) => object.set("ok", text)?,
        Err([error_type, message, traceback]) => {
            object.set("error_type", error_type)?;
            object.set("message", message)?;
            object.set("traceback", traceback)?;
        }
    }
    Ok(object)
}

/// What init leaves for `run`: kept in linear memory, so it is part of the snapshot.
struct Guest {
    // Dropped last; never actually dropped (the instance ends first).
    _runtime: Runtime,
    context: Context,
    run: Persistent<Function<'static>>,
}

thread_local! {
    static GUEST: RefCell<Option<Guest>> = const { RefCell::new(None) };
}

/// Prints a build-time failure and traps, so Wizer reports it with what was printed.
fn die(message: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "{message}");
    let _ = std::io::stderr().flush();
    std::process::abort()
}

/// The pending exception as `Name: message` plus its stack, for errors the SDK could not catch.
fn exception_text(ctx: &Ctx<'_>, error: Error) -> String {
    if !matches!(error, Error::Exception) {
        return error.to_string();
    }
    let value = ctx.catch();
    if let Some(object) = value.as_object() {
        let name: Option<String> = object.get("name").ok();
        let message: Option<String> = object.get("message").ok();
        let stack: Option<String> = object.get("stack").ok();
        let head = match (name, message) {
            (Some(n), Some(m)) if !m.is_empty() => format!("{n}: {m}"),
            (Some(n), _) => n,
            _ => "uncaught exception".to_string(),
        };
        return match stack {
            Some(s) if !s.is_empty() => format!("{head}\n{s}"),
            _ => head,
        };
    }
    format!("uncaught {value:?}")
}

fn random_words() -> Vec<u32> {
    let mut bytes = [0u8; 16];
    // SAFETY: the buffer is valid for 16 bytes; random_get writes at most that many.
    let errno = unsafe { wasi_random_get(bytes.as_mut_ptr(), bytes.len()) };
    if errno != 0 {
        die("capsule quickjs guest: WASI random_get failed");
    }
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// WASI's "not capable": the path is outside every granted directory, or the grant is read-only.
const ENOTCAPABLE: i32 = 76;

/// Throws a JS error for a failed file operation; refusals are named `PermissionError` (as in
/// Python), so the SDK reports them as `permission_denied`.
fn io_error(ctx: &Ctx<'_>, what: &str, path: &str, error: std::io::Error) -> Error {
    let refused = error.kind() == std::io::ErrorKind::PermissionDenied || error.raw_os_error() == Some(ENOTCAPABLE);
    let message = format!("cannot {what} `{path}`: {error}");
    let Ok(exception) = Exception::from_message(ctx.clone(), &message) else {
        return Exception::throw_message(ctx, &message);
    };
    let name = if refused { "PermissionError" } else { "OSError" };
    if exception.set("name", name).is_err() {
        return Exception::throw_message(ctx, &message);
    }
    ctx.throw(exception.into_value())
}

/// The host services the SDK captures from `globalThis.__capsule_host` (and then deletes).
fn install_host<'js>(ctx: &Ctx<'js>) -> rquickjs::Result<()> {
    let host = Object::new(ctx.clone())?;
    host.set(
        "write",
        Function::new(ctx.clone(), |fd: i32, text: String| {
            let _ = if fd == 2 {
                std::io::stderr().write_all(text.as_bytes())
            } else {
                std::io::stdout().write_all(text.as_bytes())
            };
        })?,
    )?;
    host.set("randomWords", Function::new(ctx.clone(), random_words)?)?;
    host.set(
        "callTask",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, name: String, args: String| -> rquickjs::Result<Object<'js>> {
                import_outcome(ctx, call_task(&name, &args))
            },
        )?,
    )?;
    host.set(
        "httpFetch",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, request: String| -> rquickjs::Result<Object<'js>> {
                import_outcome(ctx, http_fetch(&request))
            },
        )?,
    )?;
    host.set(
        "sleep",
        Function::new(ctx.clone(), |ms: f64| {
            if ms.is_finite() && ms > 0.0 {
                std::thread::sleep(std::time::Duration::from_secs_f64(ms / 1000.0));
            }
        })?,
    )?;
    host.set(
        "environ",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>| -> rquickjs::Result<Object<'js>> {
                let env = Object::new(ctx)?;
                for (key, value) in std::env::vars_os() {
                    env.set(
                        key.to_string_lossy().as_ref(),
                        value.to_string_lossy().as_ref(),
                    )?;
                }
                Ok(env)
            },
        )?,
    )?;
    host.set(
        "readTextFile",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, path: String| {
            std::fs::read_to_string(&path).map_err(|e| io_error(&ctx, "read", &path, e))
        })?,
    )?;
    host.set(
        "writeTextFile",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, path: String, text: String| {
            std::fs::write(&path, text).map_err(|e| io_error(&ctx, "write", &path, e))
        })?,
    )?;
    host.set(
        "readDir",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, path: String| -> rquickjs::Result<Array<'js>> {
                let entries =
                    std::fs::read_dir(&path).map_err(|e| io_error(&ctx, "list", &path, e))?;
                let mut names = Vec::new();
                for entry in entries {
                    let entry = entry.map_err(|e| io_error(&ctx, "list", &path, e))?;
                    names.push(entry.file_name().to_string_lossy().into_owned());
                }
                names.sort();
                let array = Array::new(ctx)?;
                for (i, name) in names.into_iter().enumerate() {
                    array.set(i, name)?;
                }
                Ok(array)
            },
        )?,
    )?;
    host.set(
        "resolveDep",
        Function::new(ctx.clone(), |base: String, specifier: String| {
            modules::resolve_dep(&base, &specifier)
        })?,
    )?;
    host.set(
        "moduleKind",
        Function::new(ctx.clone(), |id: String| modules::kind_of(&id))?,
    )?;
    host.set(
        "moduleSource",
        Function::new(ctx.clone(), |id: String| modules::take_source(&id))?,
    )?;
    host.set(
        "originalLine",
        Function::new(ctx.clone(), |id: String, line: u32| {
            modules::original_line(&id, line)
        })?,
    )?;
    host.set(
        "compileCjs",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, id: String| {
            modules::compile_cjs(&ctx, &id)
        })?,
    )?;
    host.set(
        "importSync",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, id: String| -> rquickjs::Result<Value<'js>> {
                let promise = Module::import(&ctx, id.as_str())?;
                drive(&ctx, &promise)
            },
        )?,
    )?;
    // The code interpreter's cells: a global, non-strict script (so `x = 1` and a cell's `let`,
    // `const`, `function` and `class` declarations stay visible to later cells of a session) in
    // which `await` may appear at the top level; a promise of `{ value: <completion value> }`.
    // `filename` names the cell in stack traces.
    host.set(
        "evalAsync",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, code: String, filename: String| -> rquickjs::Result<Promise<'js>> {
                let mut options = EvalOptions::default();
                options.global = true;
                options.strict = false;
                options.promise = true;
                options.filename = Some(filename);
                ctx.eval_with_options(code, options)
            },
        )?,
    )?;
    native::install(ctx, &host)?;
    ctx.globals().set("__capsule_host", host)
}

/// Runs the event loop until `promise` settles: `process.nextTick` callbacks, then promise jobs,
/// repeatedly; then one timer or immediate (node.js `turn`, which sleeps until the next timer is
/// due). `WouldBlock` when nothing is left that could settle it.
fn drive<'js>(ctx: &Ctx<'js>, promise: &Promise<'js>) -> rquickjs::Result<Value<'js>> {
    let machinery: Object = ctx.globals().get("__capsule_modules")?;
    let ticks: Function = machinery.get("runTicks")?;
    let turn: Function = machinery.get("turn")?;
    loop {
        loop {
            let ran_ticks: bool = ticks.call(())?;
            let mut ran_jobs = false;
            while ctx.execute_pending_job() {
                ran_jobs = true;
            }
            if !ran_ticks && !ran_jobs {
                break;
            }
        }
        if let Some(result) = promise.result::<Value>() {
            return result;
        }
        let more: bool = turn.call(())?;
        if !more {
            return Err(Error::WouldBlock);
        }
    }
}

/// Loads the SDK and the user's module; returns the SDK's `run` and the task table.
fn initialize<'js>(ctx: &Ctx<'js>, entry: &str) -> rquickjs::Result<(Function<'js>, String)> {
    install_host(ctx)?;
    let (sdk, done) = Module::declare(ctx.clone(), SDK_MODULE, SDK_SOURCE)?.eval()?;
    done.finish::<()>()?;
    let (_, done) = Module::declare(
        ctx.clone(),
        SDK_ALIAS,
        format!("export * from \"{SDK_MODULE}\";"),
    )?
    .eval()?;
    done.finish::<()>()?;
    let (_, done) = Module::declare(ctx.clone(), NODE_MODULE, NODE_SOURCE)?.eval()?;
    done.finish::<()>()?;
    let promise = Module::import(ctx, entry)?;
    let namespace = match drive(ctx, &promise) {
        Err(Error::WouldBlock) => {
            return Err(Exception::throw_message(
                ctx,
                "the module's top level awaits something that never happens",
            ));
        }
        other => other?,
    };
    let machinery: Object = ctx.globals().get("__capsule_modules")?;
    let warnings: Function = machinery.get("initWarnings")?;
    let warnings: Value = warnings.call(())?;
    let settle: Function = machinery.get("endInit")?;
    settle.call::<_, ()>(())?;
    let finalize: Function = sdk.get("finalize")?;
    let table: String = finalize.call((namespace, warnings))?;
    Ok((sdk.get("run")?, table))
}

#[unsafe(export_name = "wizer.initialize")]
pub extern "C" fn wizer_initialize() {
    let file = std::env::var("CAPSULE_TASK_FILE").unwrap_or_else(|_| "task.js".to_string());
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        die(&format!("error: cannot read the module map of `{file}`: {e}"));
    }
    let map = modules::parse(&input).unwrap_or_else(|e| die(&format!("error: {e}")));
    drop(input);
    let entry = map.entry.clone();
    modules::MAP.with(|m| *m.borrow_mut() = map);
    let runtime =
        Runtime::new().unwrap_or_else(|e| die(&format!("error: cannot start QuickJS: {e}")));
    runtime.set_loader(modules::MapResolver, modules::MapLoader);
    let context = Context::full(&runtime)
        .unwrap_or_else(|e| die(&format!("error: cannot start QuickJS: {e}")));
    let (run, table) = context.with(|ctx| match initialize(&ctx, &entry) {
        Ok((run, table)) => (Persistent::save(&ctx, run), table),
        Err(e) => die(&format!(
            "error: the task module `{file}` failed while loading (its top level runs at build time)\n{}",
            exception_text(&ctx, e)
        )),
    });
    let mut stdout = std::io::stdout();
    if stdout
        .write_all(table.as_bytes())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        die("error: cannot write the task table");
    }
    let _ = std::io::stderr().flush();
    runtime.run_gc();
    GUEST.with(|g| {
        *g.borrow_mut() = Some(Guest {
            _runtime: runtime,
            context,
            run,
        })
    });
}

// ---- canonical ABI -----------------------------------------------------------------------------

#[unsafe(export_name = "cabi_realloc")]
pub unsafe extern "C" fn cabi_realloc(
    old: *mut u8,
    old_size: usize,
    align: usize,
    new_size: usize,
) -> *mut u8 {
    if new_size == 0 {
        return align as *mut u8;
    }
    let Ok(layout) = Layout::from_size_align(new_size, align) else {
        std::process::abort()
    };
    // SAFETY: the caller (the canonical ABI) passes a block it got from this function, with the
    // size and alignment it asked for, or null/0 for a new block.
    let ptr = unsafe {
        if old.is_null() || old_size == 0 {
            alloc(layout)
        } else {
            realloc(
                old,
                Layout::from_size_align_unchecked(old_size, align),
                new_size,
            )
        }
    };
    if ptr.is_null() {
        std::process::abort();
    }
    ptr
}

/// `result<string, task-error>` as the canonical ABI lays it out (see ABI.md): discriminant at 0,
/// then one or three `(ptr, len)` strings from offset 4.
#[repr(C)]
pub struct RunReturn {
    is_err: u32,
    strings: [(*mut u8, usize); 3],
}

static mut RET: RunReturn = RunReturn {
    is_err: 0,
    strings: [(std::ptr::null_mut(), 0); 3],
};

fn leak(text: String) -> (*mut u8, usize) {
    let bytes = text.into_bytes().into_boxed_slice();
    let len = bytes.len();
    (Box::into_raw(bytes).cast::<u8>(), len)
}

/// Takes ownership of a string the host wrote with `cabi_realloc(.., align 1, len)`.
unsafe fn take_string(ptr: *mut u8, len: usize) -> String {
    // SAFETY: see above; the layout matches the allocation.
    let bytes = unsafe { Vec::from_raw_parts(ptr, len, len) };
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn run_task(name: String, args: String) -> Result<String, [String; 3]> {
    GUEST.with(|guest| {
        let guest = guest.borrow();
        let Some(guest) = guest.as_ref() else {
            return Err([
                "internal".into(),
                "the guest was not pre-initialized".into(),
                String::new(),
            ]);
        };
        guest.context.with(|ctx| {
            let outcome = guest
                .run
                .clone()
                .restore(&ctx)
                .and_then(|run| run.call::<_, Promise>((name, args)))
                .and_then(|promise| drive(&ctx, &promise))
                .and_then(|value| <Object as rquickjs::FromJs>::from_js(&ctx, value));
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(Error::WouldBlock) => {
                    return Err([
                        "task_error".into(),
                        "the task's promise never settled (it awaits something that cannot happen)"
                            .into(),
                        String::new(),
                    ]);
                }
                Err(e) => {
                    // A timer callback or nextTick threw (Node's uncaught exception).
                    let text = exception_text(&ctx, e);
                    let head = text.lines().next().unwrap_or_default().to_string();
                    return Err(["task_error".into(), head, text]);
                }
            };
            if let Ok(Some(json)) = outcome.get::<_, Option<String>>("ok") {
                return Ok(json);
            }
            let field = |key: &str| {
                outcome
                    .get::<_, Option<String>>(key)
                    .ok()
                    .flatten()
                    .unwrap_or_default()
            };
            Err([field("error_type"), field("message"), field("traceback")])
        })
    })
}

#[unsafe(export_name = "run")]
pub unsafe extern "C" fn run(
    name_ptr: *mut u8,
    name_len: usize,
    args_ptr: *mut u8,
    args_len: usize,
) -> *mut RunReturn {
    // wasi-libc cached the preopen table and environ during init; exec-time grants differ.
    // SAFETY: plain libc calls with no arguments.
    unsafe {
        __wasilibc_reset_preopens();
        __wasilibc_deinitialize_environ();
    }
    // SAFETY: the host passes strings it allocated with cabi_realloc.
    let (name, args) = unsafe {
        (
            take_string(name_ptr, name_len),
            take_string(args_ptr, args_len),
        )
    };
    let outcome = run_task(name, args);
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let ret = &raw mut RET;
    // SAFETY: single-threaded guest; RET is only touched here and in cabi_post_run.
    unsafe {
        match outcome {
            Ok(json) => {
                (*ret).is_err = 0;
                (*ret).strings[0] = leak(json);
            }
            Err([kind, message, traceback]) => {
                (*ret).is_err = 1;
                (*ret).strings = [leak(kind), leak(message), leak(traceback)];
            }
        }
    }
    ret
}

#[unsafe(export_name = "cabi_post_run")]
pub unsafe extern "C" fn cabi_post_run(ret: *mut RunReturn) {
    // SAFETY: `ret` is the pointer `run` returned; its strings were leaked boxes.
    let ret = unsafe { &mut *ret };
    let count = if ret.is_err != 0 { 3 } else { 1 };
    for (ptr, len) in &mut ret.strings[..count] {
        // SAFETY: see above.
        unsafe {
            if !ptr.is_null() {
                drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                    *ptr, *len,
                )));
                *ptr = std::ptr::null_mut();
            }
        }
    }
}
