//! Several runners on one bus, and the helpers the lease, cancel, timeout and clean-up tests
//! share.
//!
//! Each [`Member`] is a runner with its own `runner_id`, key (made by `macbridge keygen`), work
//! folder and config file, all in the test's [`World`]. Adding a member also adds its key to
//! the requester's `runner_signers` under its id, so results from any member verify.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::bins;
use crate::craft::{self, RESULT_NAMESPACE};
use crate::proc::{self, Background, Finished, GroupReaper};
use crate::world::{CMD_LIMIT, KeyPair, World, full_branch};

/// How long a test waits for a job to start or a request to finish.
pub const RUN_LIMIT: Duration = Duration::from_secs(60);

/// How one runner of a fleet is configured. The defaults suit a local bus: fast polls, a
/// heartbeat every second, a ten-second lease.
#[derive(Debug, Clone)]
pub struct RunnerOpts {
    pub labels: Vec<String>,
    pub poll_seconds: f64,
    pub heartbeat_seconds: f64,
    pub lease_seconds: f64,
    pub max_attempts: Option<u32>,
    pub max_job_seconds: Option<f64>,
    pub kill_grace_seconds: Option<f64>,
    pub retention_seconds: Option<f64>,
    /// The `engine:` key: an executable run in place of `kakeya`.
    pub engine: Option<PathBuf>,
    /// The `remote:` key; default: the world's bus as a local path.
    pub remote: Option<String>,
    /// The `work_dir:` key; default: `work-<id>` in the world.
    pub work_dir: Option<PathBuf>,
    pub min_free_bytes: Option<u64>,
    /// The `ended_grace_seconds:` key (extra wait before taking over an ended job's lease).
    pub ended_grace_seconds: Option<f64>,
    /// A command the runner is started under (`ip netns exec NS`, `env FAKETIME=...`).
    pub wrap: Vec<String>,
}

impl Default for RunnerOpts {
    fn default() -> Self {
        RunnerOpts {
            labels: vec!["e2e".into(), "cpu".into()],
            poll_seconds: 0.2,
            heartbeat_seconds: 1.0,
            lease_seconds: 10.0,
            max_attempts: None,
            max_job_seconds: None,
            kill_grace_seconds: None,
            retention_seconds: None,
            engine: None,
            remote: None,
            work_dir: None,
            min_free_bytes: None,
            ended_grace_seconds: None,
            wrap: Vec::new(),
        }
    }
}

impl RunnerOpts {
    /// Short leases for fault tests: a dead runner's lease expires within a few seconds.
    pub fn short_lease() -> Self {
        RunnerOpts {
            lease_seconds: 3.0,
            ..Self::default()
        }
    }

    /// These labels instead of the default ones.
    pub fn labels(mut self, labels: &[&str]) -> Self {
        self.labels = labels.iter().map(|l| l.to_string()).collect();
        self
    }
}

/// One runner of a fleet: its identity, files, and how to start it.
#[derive(Debug)]
pub struct Member {
    pub id: String,
    pub key: KeyPair,
    pub work_dir: PathBuf,
    pub config: PathBuf,
    /// Number of processes started so far (each gets its own log file).
    lives: AtomicU32,
    wrap: Vec<String>,
}

fn yaml_path(path: &Path) -> String {
    // A JSON string is a valid YAML double-quoted scalar.
    serde_json::to_string(&path.display().to_string()).expect("path as JSON")
}

impl World {
    /// Add a runner called `id` (its own key, work folder and config) to this world's bus,
    /// trusted by the requester for results under the principal `id`.
    pub fn add_runner(&self, id: &str, opts: &RunnerOpts) -> Member {
        let key = self.keygen(&format!("runner-{id}"));
        let work_dir = opts
            .work_dir
            .clone()
            .unwrap_or_else(|| self.root.join(format!("work-{id}")));
        let config = self.root.join(format!("runner-{id}.yaml"));
        let labels: Vec<String> = opts
            .labels
            .iter()
            .map(|l| serde_json::to_string(l).unwrap())
            .collect();
        let mut yaml = format!(
            "remote: {}\nrunner_id: {id}\nkey: {}\nallowed_signers: {}\nwork_dir: {}\n\
             labels: [{}]\npoll_seconds: {}\nheartbeat_seconds: {}\nlease_seconds: {}\nenv: {{}}\n",
            opts.remote
                .as_deref()
                .map(|r| serde_json::to_string(r).expect("remote as JSON"))
                .unwrap_or_else(|| yaml_path(&self.bus)),
            yaml_path(&key.path),
            yaml_path(&self.allowed_signers),
            yaml_path(&work_dir),
            labels.join(", "),
            opts.poll_seconds,
            opts.heartbeat_seconds,
            opts.lease_seconds,
        );
        let optional = [
            ("max_attempts", opts.max_attempts.map(f64::from)),
            ("max_job_seconds", opts.max_job_seconds),
            ("kill_grace_seconds", opts.kill_grace_seconds),
            ("retention_seconds", opts.retention_seconds),
            ("min_free_bytes", opts.min_free_bytes.map(|b| b as f64)),
            ("ended_grace_seconds", opts.ended_grace_seconds),
        ];
        for (name, value) in optional {
            if let Some(v) = value {
                yaml.push_str(&format!("{name}: {v}\n"));
            }
        }
        if let Some(engine) = &opts.engine {
            yaml.push_str(&format!("engine: {}\n", yaml_path(engine)));
        }
        std::fs::write(&config, yaml).expect("writing a runner config");
        let mut signers = std::fs::read_to_string(&self.runner_signers).unwrap_or_default();
        signers.push_str(&format!(
            "{id} namespaces=\"{RESULT_NAMESPACE}\" {}\n",
            key.public_line
        ));
        std::fs::write(&self.runner_signers, signers).expect("writing runner_signers");
        Member {
            id: id.to_string(),
            key,
            work_dir,
            config,
            lives: AtomicU32::new(0),
            wrap: opts.wrap.clone(),
        }
    }

    /// `macbridge queue --json`, which must succeed.
    #[track_caller]
    pub fn queue(&self) -> Value {
        self.mb(&["queue", "--remote", &self.remote(), "--json"])
            .ok()
            .json()
    }

    /// `macbridge cancel --json` of `branch`, signed with `key`; the raw outcome.
    pub fn cancel(&self, branch: &str, key: &KeyPair) -> Finished {
        let (remote, key) = (self.remote(), key.path.display().to_string());
        self.mb(&[
            "cancel", "--remote", &remote, "--branch", branch, "--key", &key, "--json",
        ])
    }

    /// Poll `macbridge status` until `branch` is in one of `states`; returns that status.
    #[track_caller]
    pub fn wait_state(&self, branch: &str, states: &[&str], limit: Duration) -> Value {
        let mut last = Value::Null;
        proc::poll(limit, || {
            last = self.status(branch);
            states
                .iter()
                .any(|s| last["state"] == *s)
                .then(|| last.clone())
        })
        .unwrap_or_else(|| {
            panic!("gave up after {limit:?} waiting for {branch} to reach {states:?}; last status: {last}")
        })
    }

    /// A [`GroupReaper`] for job processes started in this world.
    pub fn reaper(&self) -> GroupReaper {
        GroupReaper::new(self.root.display().to_string())
    }

    /// The result record on the bus for `branch`, which must have one.
    #[track_caller]
    pub fn result_record(&self, branch: &str) -> Value {
        let (bytes, _) = self.result_on_bus(branch).expect("a result on the bus");
        serde_json::from_slice(&bytes).expect("result.json is JSON")
    }

    /// The result of `branch` lists its logs as artifacts, and they are on the bus; returns
    /// the published stderr log.
    #[track_caller]
    pub fn assert_logs_published(&self, branch: &str) -> String {
        let record = self.result_record(branch);
        let paths: Vec<&str> = record["artifacts"]
            .as_array()
            .expect("artifacts")
            .iter()
            .filter_map(|a| a["path"].as_str())
            .collect();
        let mut stderr = String::new();
        for log in [".mac-bridge/logs/stdout.log", ".mac-bridge/logs/stderr.log"] {
            assert!(paths.contains(&log), "{log} not listed: {record}");
            let bytes = crate::gitx::read_file(&self.bus, &full_branch(branch), log)
                .unwrap_or_else(|| panic!("{log} not on the bus"));
            stderr = String::from_utf8_lossy(&bytes).into_owned();
        }
        stderr
    }

    /// The request commit's tip and the claim ref's tip, to show nothing moved.
    pub fn tips(&self, branch: &str, request_id: &str) -> (Option<String>, Option<String>) {
        (
            crate::gitx::resolve(&self.bus, &full_branch(branch)),
            crate::gitx::resolve(&self.bus, &format!("refs/mac-bridge/claims/{request_id}")),
        )
    }
}

/// Final states of a request.
pub const FINAL: &[&str] = &[
    "done",
    "failed",
    "rejected",
    "cancelled",
    "expired",
    "timed_out",
];

/// The cancel namespace.
pub const CANCEL_NAMESPACE: &str = "macbridge-cancel-v1";

/// The lease at the tip of `request_id`'s claim ref on the bus, if any.
pub fn lease_tip(w: &World, request_id: &str) -> Option<Value> {
    let rev = format!("refs/mac-bridge/claims/{request_id}");
    let bytes = crate::gitx::read_file(&w.bus, &rev, "lease.json")?;
    Some(serde_json::from_slice(&bytes).expect("lease.json is JSON"))
}

/// Wait until `member` runs `request_id`: its job folder holds the first `sleep.json` and its
/// lease is `running` (renewed at least once). The job's process group is handed to `reaper`
/// at once, so it cannot outlive the test. Returns the report.
#[track_caller]
pub fn wait_running(w: &World, member: &Member, request_id: &str, reaper: &GroupReaper) -> Value {
    let mut lease = None;
    let report = proc::poll(RUN_LIMIT, || {
        let report = member.sleep_report(request_id)?;
        // kakeya leads the job's process group: its pid is the group id.
        reaper.watch(sleep_pids(&report).0);
        lease = lease_tip(w, request_id);
        let running = lease
            .as_ref()
            .is_some_and(|l| l["state"] == "running" && l["runner_id"] == member.id.as_str());
        running.then_some(report)
    });
    report.unwrap_or_else(|| panic!("{} never ran {request_id}; lease: {lease:?}", member.id))
}

/// Wait until `member`'s job folder for `request_id` holds the first `sleep.json` (the job
/// started its children and wrote its pids); the job's group is handed to `reaper` at once.
#[track_caller]
pub fn wait_started(member: &Member, request_id: &str, reaper: &GroupReaper) -> Value {
    let report = proc::poll(RUN_LIMIT, || member.sleep_report(request_id));
    let report = report.unwrap_or_else(|| panic!("{} never started {request_id}", member.id));
    reaper.watch(sleep_pids(&report).0);
    report
}

/// The entry for `branch` in a `macbridge queue --json` document, if listed.
pub fn queue_entry<'a>(queue: &'a Value, branch: &str) -> Option<&'a Value> {
    queue["requests"]
        .as_array()
        .expect("queue has a requests list")
        .iter()
        .find(|e| e["branch"] == branch)
}

impl World {
    /// Push a cancel commit onto `branch` built with git plumbing: the request's files plus
    /// `cancel.json` (naming `requested_by`) signed by `key` with `ssh-keygen`. Returns the
    /// commit id.
    #[track_caller]
    pub fn push_cancel(
        &self,
        branch: &str,
        request_id: &str,
        requested_by: &str,
        key: &KeyPair,
    ) -> String {
        let full = full_branch(branch);
        crate::gitx::fetch(&self.scratch, &self.bus, &format!("+{full}:{full}"));
        let tip = crate::gitx::resolve(&self.scratch, &full).expect("fetched branch");
        let file = |name: &str| {
            crate::gitx::read_file(&self.scratch, &tip, &format!(".mac-bridge/{name}"))
                .unwrap_or_else(|| panic!("{name} missing on {branch}"))
        };
        let (manifest, request_sig) = (file("request.json"), file("request.sig"));
        let record = serde_json::json!({
            "schema_version": 1,
            "request_id": request_id,
            "requested_by": requested_by,
            "issued_at": craft::rfc3339(craft::unix_now()),
            "reason": "crafted by the e2e suite",
        });
        let mut bytes = serde_json::to_vec_pretty(&record).unwrap();
        bytes.push(b'\n');
        let sig = craft::ssh_sign(&key.path, CANCEL_NAMESPACE, &bytes, &self.files);
        let commit = crate::gitx::request_commit(
            &self.scratch,
            &[
                ("request.json", &manifest),
                ("request.sig", &request_sig),
                ("cancel.json", &bytes),
                ("cancel.sig", &sig),
            ],
            Some(&tip),
        );
        crate::gitx::push(&self.scratch, &self.bus, &commit, &full);
        commit
    }
}

impl Member {
    fn command(&self, w: &World, sub: &str) -> Command {
        let mut cmd = match self.wrap.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(bins::runner());
                cmd
            }
            None => Command::new(bins::runner()),
        };
        w.isolate(&mut cmd)
            .args([sub, "--config"])
            .arg(&self.config);
        cmd
    }

    /// Start `macbridge-runner serve` in the background; each start logs to its own file
    /// (`runner-<id>.<n>.log`), so a restarted runner's log is kept apart.
    pub fn serve(&self, w: &World) -> Background {
        let life = self.lives.fetch_add(1, Ordering::SeqCst) + 1;
        let log = w.root.join(format!("runner-{}.{life}.log", self.id));
        Background::spawn(&mut self.command(w, "serve"), &log)
    }

    /// [`Member::serve`] with extra environment variables (e.g. a fault-injection point).
    pub fn serve_with_env(&self, w: &World, env: &[(&str, &str)]) -> Background {
        let life = self.lives.fetch_add(1, Ordering::SeqCst) + 1;
        let log = w.root.join(format!("runner-{}.{life}.log", self.id));
        let mut cmd = self.command(w, "serve");
        cmd.envs(env.iter().copied());
        Background::spawn(&mut cmd, &log)
    }

    /// `macbridge-runner once --json`; returns the `handled` list.
    #[track_caller]
    pub fn once(&self, w: &World) -> Vec<Value> {
        let out = proc::run(self.command(w, "once").arg("--json"), CMD_LIMIT).ok();
        out.json()["handled"]
            .as_array()
            .unwrap_or_else(|| panic!("no handled list: {out}"))
            .clone()
    }

    /// `macbridge-runner doctor --json` (whatever its exit code): the `checks` list.
    pub fn doctor(&self, w: &World) -> Vec<Value> {
        let out = self.doctor_json(w);
        out["checks"]
            .as_array()
            .unwrap_or_else(|| panic!("no checks: {out}"))
            .clone()
    }

    /// `macbridge-runner doctor --json` (whatever its exit code): the whole document.
    pub fn doctor_json(&self, w: &World) -> Value {
        proc::run(self.command(w, "doctor").arg("--json"), CMD_LIMIT).json()
    }

    /// `macbridge-runner cleanup --json`, which must succeed.
    #[track_caller]
    pub fn cleanup(&self, w: &World) -> Value {
        proc::run(self.command(w, "cleanup").arg("--json"), CMD_LIMIT)
            .ok()
            .json()
    }

    /// `work_dir/jobs/<request_id>`.
    pub fn job_dir(&self, request_id: &str) -> PathBuf {
        self.work_dir.join("jobs").join(request_id)
    }

    /// Names of the job folders under `work_dir/jobs/`, sorted.
    pub fn job_dirs(&self) -> Vec<String> {
        crate::gitx::sorted_entries(&self.work_dir.join("jobs"))
    }

    /// The main `sleep.json` of every job folder that has one: `(folder name, report)`.
    /// One per execution of the `sleep` preset on this runner (child reports not counted).
    pub fn sleep_reports(&self) -> Vec<(String, Value)> {
        self.job_dirs()
            .into_iter()
            .filter_map(|name| {
                let path = self
                    .work_dir
                    .join("jobs")
                    .join(&name)
                    .join("out/sleep.json");
                path.is_file().then(|| (name, read_json(&path)))
            })
            .collect()
    }

    /// The sleep report of the job folder for `request_id`, once it exists.
    pub fn sleep_report(&self, request_id: &str) -> Option<Value> {
        let path = self.job_dir(request_id).join("out/sleep.json");
        // The engine writes reports atomically (temp file + rename), so a present file is whole.
        path.is_file().then(|| read_json(&path))
    }

    /// Whether `signature` over `data` is this runner's result signature, by `ssh-keygen -Y
    /// verify` against the requester's `runner_signers`.
    pub fn signed(&self, w: &World, data: &[u8], signature: &[u8]) -> bool {
        craft::ssh_verify(
            &w.runner_signers,
            &self.id,
            RESULT_NAMESPACE,
            data,
            signature,
            &w.files,
        )
    }
}

/// A JSON file, parsed.
#[track_caller]
pub fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The main process id and the child process ids a `sleep` report records.
#[track_caller]
pub fn sleep_pids(report: &Value) -> (u32, Vec<u32>) {
    let pid = report["pid"].as_u64().expect("sleep report has a pid") as u32;
    let children = report["child_pids"]
        .as_array()
        .expect("sleep report has child_pids")
        .iter()
        .map(|p| p.as_u64().expect("child pid") as u32)
        .collect();
    (pid, children)
}

/// Poll until none of `pids` is alive (zombies count as gone), panicking after `limit`.
#[track_caller]
pub fn wait_gone(pids: &[u32], limit: Duration) {
    let mut alive = Vec::new();
    let gone = proc::poll(limit, || {
        alive = pids
            .iter()
            .copied()
            .filter(|p| proc::pid_alive(*p))
            .collect();
        alive.is_empty().then_some(())
    });
    assert!(
        gone.is_some(),
        "processes still alive after {limit:?}: {alive:?} (of {pids:?})"
    );
}
