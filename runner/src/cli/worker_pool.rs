//! `worker --processes N`: the same protocol, served by N single-threaded worker processes.
//!
//! Why processes: a call's first writes to its instance's memory are copy-on-write (or
//! write-protect) faults, and in a multi-threaded process each one must flush the other CPUs'
//! TLBs; on virtual machines that is an exit to the hypervisor per fault, which made two threads
//! slower than one for short calls. Separate processes share no address space, so they scale.
//!
//! The parent only routes lines: each request goes to the child with the fewest unanswered ones,
//! answers are copied to stdout as they come, one line at a time. Requests a child leaves
//! unanswered (it died) are answered here with an `internal` envelope, so every line still gets
//! its answer.

use crate::{Envelope, ErrorType};
use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};

/// One child worker and the requests it has not answered yet.
struct Worker {
    child: Child,
    input: Option<ChildStdin>,
    pending: Arc<Mutex<Pending>>,
}

/// Unanswered requests of one child: how many in all (for routing), and by id text (to answer
/// for them if the child dies).
#[derive(Default)]
struct Pending {
    total: usize,
    by_id: HashMap<String, u32>,
}

impl Pending {
    fn add(&mut self, id: String) {
        self.total += 1;
        *self.by_id.entry(id).or_default() += 1;
    }

    fn answered(&mut self, id: &str) {
        if let Some(count) = self.by_id.get_mut(id) {
            self.total -= 1;
            *count -= 1;
            if *count == 0 {
                self.by_id.remove(id);
            }
        }
    }
}

/// Only the `id` of a line, to keep track of what is answered.
#[derive(Deserialize)]
struct IdOnly {
    #[serde(default)]
    id: Value,
}

fn id_of(line: &str) -> String {
    serde_json::from_str::<IdOnly>(line)
        .map(|i| i.id.to_string())
        .unwrap_or_else(|_| Value::Null.to_string())
}

/// Runs `processes` children (`child_args` after the program) and routes stdin/stdout through
/// them until EOF; returns the exit code.
pub fn serve(processes: usize, child_args: &[String]) -> anyhow::Result<u8> {
    let program = std::env::current_exe().context("cannot find this program to start workers")?;
    let stdout = Arc::new(Mutex::new(std::io::stdout()));
    let mut workers = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..processes {
        let mut child = Command::new(&program)
            .args(child_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start a worker process")?;
        let output = BufReader::new(child.stdout.take().context("worker stdout")?);
        let pending: Arc<Mutex<Pending>> = Arc::default();
        let (answered, out) = (pending.clone(), stdout.clone());
        readers.push(std::thread::spawn(move || forward(output, &answered, &out)));
        workers.push(Worker {
            input: child.stdin.take(),
            child,
            pending,
        });
    }
    for line in std::io::stdin().lock().lines() {
        let line = line.context("cannot read stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let id = id_of(&line);
        // The child with the fewest unanswered requests (a full pipe blocks here: back-pressure).
        let Some(worker) = workers
            .iter_mut()
            .filter(|w| w.input.is_some())
            .min_by_key(|w| lock(&w.pending).total)
        else {
            answer_lost(&stdout, &id);
            continue;
        };
        lock(&worker.pending).add(id.clone());
        let sent = worker
            .input
            .as_mut()
            .map(|input| writeln!(input, "{line}").and_then(|()| input.flush()));
        if !matches!(sent, Some(Ok(()))) {
            // That child is gone; its reader answers what it left, this line included.
            worker.input = None;
        }
    }
    for worker in &mut workers {
        drop(worker.input.take());
    }
    let mut all_ok = true;
    for (worker, reader) in workers.iter_mut().zip(readers) {
        let _ = reader.join();
        all_ok &= worker.child.wait().is_ok_and(|status| status.success());
        let left: Vec<(String, u32)> = std::mem::take(&mut lock(&worker.pending).by_id)
            .into_iter()
            .collect();
        for (id, count) in left {
            for _ in 0..count {
                answer_lost(&stdout, &id);
            }
        }
    }
    if !all_ok {
        bail!("a worker process failed (its unanswered requests were answered as `internal`)");
    }
    Ok(0)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Copies a child's answers to stdout, a whole line at a time.
fn forward(output: impl BufRead, pending: &Mutex<Pending>, stdout: &Mutex<std::io::Stdout>) {
    for line in output.lines() {
        let Ok(line) = line else { break };
        let id = id_of(&line);
        lock(pending).answered(&id);
        let mut out = lock(stdout);
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    }
}

fn answer_lost(stdout: &Mutex<std::io::Stdout>, id: &str) {
    let envelope = Envelope::refused(
        "",
        ErrorType::Internal,
        "the worker process running this request exited before answering".into(),
    );
    let id: Value = serde_json::from_str(id).unwrap_or(Value::Null);
    let line = serde_json::json!({ "id": id, "envelope": serde_json::to_value(&envelope).unwrap_or_default() });
    let mut out = lock(stdout);
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}
