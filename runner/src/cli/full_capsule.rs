//! The lean `capsule` front's way to `capsule-full`, the binary beside it with the compiler.

use crate::LocalCompiler;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

/// Where `capsule-full` is: beside this binary (symlinks to `capsule` resolved).
fn path() -> std::io::Result<PathBuf> {
    let this = std::env::current_exe()?;
    let dir = this.parent().ok_or_else(|| {
        std::io::Error::other(format!("`{}` has no parent directory", this.display()))
    })?;
    Ok(dir.join(format!("capsule-full{}", std::env::consts::EXE_SUFFIX)))
}

/// Runs `capsule-full` with this process's arguments: on Unix in this process (same pid, stdio,
/// signals and exit status), elsewhere as a child whose status is ours. Returns only when it
/// cannot run it, with the exit code to end with.
pub fn hand_over(args: &[OsString]) -> u8 {
    let full = match path() {
        Ok(full) => full,
        Err(e) => return missing(&format!("cannot find this executable: {e}")),
    };
    let mut command = Command::new(&full);
    command.args(args.iter().skip(1));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Usage lines name the program as it was called.
        if let Some(arg0) = args.first() {
            command.arg0(arg0);
        }
        let error = command.exec();
        missing(&format!("cannot run `{}`: {error}", full.display()))
    }
    #[cfg(not(unix))]
    match command.status() {
        Ok(status) => status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(1),
        Err(error) => missing(&format!("cannot run `{}`: {error}", full.display())),
    }
}

fn missing(reason: &str) -> u8 {
    eprintln!(
        "error: {reason}\n  this command needs `capsule-full`, installed beside `capsule` (only `capsule exec` runs without it)"
    );
    2
}

/// Compiles a bundle's portable component with `capsule-full precompile-for-host`.
struct FullCapsuleCompiler;

impl LocalCompiler for FullCapsuleCompiler {
    fn precompile(&self, component: &[u8]) -> Result<Vec<u8>, String> {
        let full = path().map_err(|e| format!("cannot find `capsule-full`: {e}"))?;
        let fail = |e: std::io::Error| format!("cannot run `{}`: {e}", full.display());
        let mut child = Command::new(&full)
            .arg("precompile-for-host")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(fail)?;
        let mut stdin = child.stdin.take().ok_or("no stdin pipe")?;
        let mut stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let mut stderr = child.stderr.take().ok_or("no stderr pipe")?;
        // Fed on a thread: the child writes its code while still reading, and both pipes are
        // smaller than a component.
        let (cwasm, errors) = std::thread::scope(|scope| {
            let feeding = scope.spawn(move || stdin.write_all(component));
            let errors = scope.spawn(move || {
                let mut text = String::new();
                stderr.read_to_string(&mut text).map(|_| text)
            });
            let mut cwasm = Vec::new();
            let read = stdout.read_to_end(&mut cwasm).map(|_| cwasm);
            // A child that failed early closes stdin: its stderr says why.
            let _ = feeding.join();
            (read, errors.join())
        });
        let status = child.wait().map_err(fail)?;
        let errors = match errors {
            Ok(Ok(text)) => text,
            _ => String::new(),
        };
        if !status.success() {
            return Err(format!(
                "`{} precompile-for-host` failed ({status}): {}",
                full.display(),
                errors.trim()
            ));
        }
        cwasm.map_err(fail)
    }
}

/// The compiler `capsule exec` falls back on for a bundle without code for this host.
pub fn compiler() -> Arc<dyn LocalCompiler> {
    Arc::new(FullCapsuleCompiler)
}
