//! Live instances: one instance of a bundle's component kept across many calls, so that what a
//! call leaves in the guest (a code interpreter session's variables, imports, functions) is there
//! for the next one.
//!
//! Each call gets its own deadline and fuel; memory is capped for the instance's whole life. A
//! call that ends inside the guest (a result, or an error the guest returned) leaves the instance
//! usable; one stopped where it was (a deadline, a trap such as running out of fuel, a dropped
//! future) leaves it in no known state, and [`LiveCall::alive`] says so: the caller must throw
//! the instance away (or [`LiveInstance::reset`] it).

use crate::disk::DiskBudget;
use crate::instance::{self, AttemptState, Environment, GrantedDir, Outputs, Task};
use crate::outcome::{Envelope, Execution};
use crate::output::Listener;
use crate::runner::{BundleCore, LoadedBundle, envelope};
use crate::subtask::{CallLog, SubTaskScope};
use crate::{Error, deadline};
use capsule_packager::Policy;
use capsule_packager::policy::{Compute, narrow_hosts};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::Store;

/// What a live instance may use for its whole life; each may only narrow what its task declares.
#[derive(Clone, Debug)]
pub struct LiveGrants {
    /// Linear memory cap of the instance, in bytes.
    pub ram_bytes: u64,
    /// Host patterns it may reach over HTTP (narrowed by the task's `allowed_hosts`).
    pub allowed_hosts: Vec<String>,
    /// Environment variables it sees, with their values.
    pub env: Vec<(String, String)>,
    /// Host directories it may use.
    pub dirs: Vec<GrantedDir>,
    /// Bytes its writable directories may hold, counting what they hold when it starts (`None`:
    /// what the task declares).
    pub disk_bytes: Option<u64>,
}

/// The limits of one call on a live instance; each may only narrow what its task declares.
#[derive(Clone, Copy, Debug)]
pub struct CallLimits {
    /// Wall-clock limit of the call.
    pub timeout: Duration,
    /// Fuel the call may use.
    pub fuel: u64,
}

/// Streams a call's output as it is written: (stdout, stderr).
pub type OutputListeners = (Listener, Listener);

/// How one call on a live instance went.
pub struct LiveCall {
    /// The call's envelope, as for a task call.
    pub envelope: Envelope,
    /// Whether the instance can take another call.
    pub alive: bool,
}

/// One instance of a bundle's component, kept between calls.
pub struct LiveInstance {
    core: Arc<BundleCore>,
    task: String,
    /// The task's policy under the grants (the per-call limits are applied per call).
    policy: Policy,
    grants: LiveGrants,
    output: Outputs,
    store: Store<AttemptState>,
    instance: Task,
    calls: u64,
}

impl LoadedBundle {
    /// Instantiates the bundle's component for calls of `task` under `grants`.
    pub async fn instantiate_live(
        &self,
        task: &str,
        grants: LiveGrants,
    ) -> Result<LiveInstance, Error> {
        let core = self.core.clone();
        let declared = core
            .manifest
            .task(task)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "the bundle has no task `{task}` (tasks: {})",
                    core.manifest.task_names()
                ))
            })?
            .policy
            .clone();
        if grants.ram_bytes > declared.ram_bytes {
            return Err(Error::Usage(format!(
                "ram {} bytes is wider than task `{task}` declares ({} bytes)",
                grants.ram_bytes, declared.ram_bytes
            )));
        }
        if let (Some(granted), Some(limit)) = (grants.disk_bytes, declared.disk_bytes)
            && granted > limit
        {
            return Err(Error::Usage(format!(
                "disk {granted} bytes is wider than task `{task}` declares ({limit} bytes)"
            )));
        }
        let mut policy = declared.clone();
        policy.ram_bytes = grants.ram_bytes;
        policy.disk_bytes = grants.disk_bytes.or(declared.disk_bytes);
        policy.allowed_hosts = narrow_hosts(&declared.allowed_hosts, &grants.allowed_hosts);
        policy.env_variables = grants.env.iter().map(|(name, _)| name.clone()).collect();
        let output = Outputs::new();
        let (store, instance) = start(&core, task, &policy, &grants, &output).await?;
        Ok(LiveInstance {
            core,
            task: task.to_string(),
            policy,
            grants,
            output,
            store,
            instance,
            calls: 0,
        })
    }
}

/// A new store and instance under `policy`.
async fn start(
    core: &Arc<BundleCore>,
    task: &str,
    policy: &Policy,
    grants: &LiveGrants,
    output: &Outputs,
) -> Result<(Store<AttemptState>, Task), Error> {
    let environment = Environment {
        layers: &core.layers,
        env: &grants.env,
        dirs: &grants.dirs,
    };
    let scope = SubTaskScope {
        core: core.clone(),
        task: task.to_string(),
        policy: policy.clone(),
        dirs: grants.dirs.clone(),
        deadline: Instant::now() + policy.timeout(),
        depth: 0,
        log: CallLog::default(),
        disk: DiskBudget::new(policy.disk_bytes, &DiskBudget::default()),
    };
    if scope.disk.is_limited() {
        scope.disk.count_existing(writable_bytes(&grants.dirs));
    }
    let mut store = instance::new_store(&core.pre, policy, &environment, scope, output.clone())
        .map_err(|e| Error::Internal(e.message))?;
    // Instantiation runs guest start code: under the task's fuel and deadline too.
    let deadline = Instant::now() + policy.timeout();
    instance::start_call(&mut store, policy.fuel(), deadline)
        .map_err(|e| Error::Internal(e.message))?;
    let instance = core
        .pre
        .instantiate_async(&mut store)
        .await
        .map_err(|e| Error::Internal(format!("cannot instantiate `{task}`: {e:#}")))?;
    Ok((store, instance))
}

/// Bytes of the files under the writable directories of `dirs` (symbolic links not followed).
fn writable_bytes(dirs: &[GrantedDir]) -> u64 {
    dirs.iter()
        .filter(|dir| dir.writable)
        .map(|dir| crate::disk::bytes_under(&dir.host))
        .sum()
}

impl LiveInstance {
    /// Calls the instance's task with `args_json` under `limits`, streaming its output to
    /// `listeners` when given.
    pub async fn call(
        &mut self,
        args_json: &str,
        limits: CallLimits,
        listeners: Option<OutputListeners>,
    ) -> LiveCall {
        let task = self.task.clone();
        // Within what the task declares, whatever the caller asked.
        let max = self.max_limits();
        let limits = CallLimits {
            timeout: limits.timeout.min(max.timeout),
            fuel: limits.fuel.min(max.fuel),
        };
        let policy = self.call_policy(limits);
        let log = CallLog::default();
        self.store.data_mut().scope.log = log.clone();
        if let Some((stdout, stderr)) = listeners {
            self.output.stdout.set_listener(Some(stdout));
            self.output.stderr.set_listener(Some(stderr));
        }
        let started = Instant::now();
        let deadline = started + limits.timeout;
        let (result, alive) = match instance::start_call(&mut self.store, limits.fuel, deadline) {
            Err(error) => (Err(error), false),
            Ok(()) => {
                let run = self.instance.call_run(&mut self.store, &task, args_json);
                let end = deadline::UntilDeadline::new(run, deadline).await;
                let alive = instance::instance_survives(&end);
                (
                    instance::finish_call(&self.store, end, &task, &policy),
                    alive,
                )
            }
        };
        self.output.stdout.set_listener(None);
        self.output.stderr.set_listener(None);
        self.calls += 1;
        let (subtasks, host_requests) = log.take();
        let execution = Execution {
            task_name: task,
            duration_ms: (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
            attempts: 1,
            fuel_consumed: instance::fuel_used(&self.store, limits.fuel),
            peak_memory_bytes: self.store.data().limiter.peak as u64,
            host_requests,
            subtasks,
        };
        LiveCall {
            envelope: envelope(result, execution, self.output.take()),
            alive,
        }
    }

    /// The task's policy for one call: the grants' policy with the call's timeout and fuel.
    fn call_policy(&self, limits: CallLimits) -> Policy {
        let mut policy = self.policy.clone();
        policy.timeout_ms = u64::try_from(limits.timeout.as_millis()).unwrap_or(u64::MAX);
        policy.compute = Compute::Fuel(limits.fuel);
        policy
    }

    /// Replaces the instance by a fresh one (all guest state gone; the grants stay).
    pub async fn reset(&mut self) -> Result<(), Error> {
        let (store, instance) = start(
            &self.core,
            &self.task,
            &self.policy,
            &self.grants,
            &self.output,
        )
        .await?;
        self.store = store;
        self.instance = instance;
        self.calls = 0;
        let _ = self.output.take();
        Ok(())
    }

    /// The `disk` budget of the instance's writable directories: what the host writes into them
    /// between calls is charged to it too.
    pub fn disk(&self) -> &DiskBudget {
        &self.store.data().scope.disk
    }

    /// Linear memory the instance holds now, in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.store.data().limiter.in_use() as u64
    }

    /// Calls made since the instance started (or was reset).
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// The most a call may have: the task's declared timeout and fuel.
    pub fn max_limits(&self) -> CallLimits {
        CallLimits {
            timeout: self.policy.timeout(),
            fuel: self.policy.fuel(),
        }
    }
}
