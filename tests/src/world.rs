//! One isolated world per test: a bus (bare repository made by `macbridge init`), a
//! requester and a runner key (made by `macbridge keygen`), trust files, a runner config, a
//! scratch repository for hand-crafted commits, and its own HOME and client cache.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::bins;
use crate::craft::{self, Draft, REQUEST_NAMESPACE, RESULT_NAMESPACE, Sealed};
use crate::gitx;
use crate::proc::{self, Background, Finished};

/// Principal of the requester key in `allowed_signers`.
pub const REQUESTER: &str = "alice";
/// Principal of the runner key in the requester's `runner_signers`.
pub const RUNNER: &str = "runner-1";
/// Longest a client or runner command may take before the test fails.
pub const CMD_LIMIT: Duration = Duration::from_secs(120);

/// An ed25519 key pair on disk.
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub path: PathBuf,
    pub public: PathBuf,
    /// `ssh-ed25519 AAAA...` without the comment.
    pub public_line: String,
    /// `SHA256:...` as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
}

/// How the runner is configured beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct RunnerSetup {
    /// Policy YAML; written to a file and named by the config's `policy` key.
    pub policy: Option<String>,
    /// The config's `env` map (values for `${ENV:NAME}` placeholders).
    pub env: Vec<(String, String)>,
}

/// See the module documentation.
pub struct World {
    _tmp: TempDir,
    pub root: PathBuf,
    pub bus: PathBuf,
    pub home: PathBuf,
    pub cache: PathBuf,
    /// A bare repository where crafted commits are built before being pushed.
    pub scratch: PathBuf,
    /// Loose files (data to sign, signatures to verify).
    pub files: PathBuf,
    pub requester: KeyPair,
    pub runner_key: KeyPair,
    /// The runner's trust file: the requester for the request and cancel namespaces.
    pub allowed_signers: PathBuf,
    /// The requester's trust file: the runner key for the result namespace.
    pub runner_signers: PathBuf,
    pub work_dir: PathBuf,
    pub config: PathBuf,
}

fn quoted(path: &Path) -> String {
    // A JSON string is a valid YAML double-quoted scalar.
    serde_json::to_string(&path.display().to_string()).expect("path as JSON")
}

impl World {
    /// A fresh world with the default runner config (no policy, empty env).
    pub fn new() -> World {
        Self::with_runner(RunnerSetup::default())
    }

    /// A fresh world whose runner is configured with `setup`.
    pub fn with_runner(setup: RunnerSetup) -> World {
        let tmp = tempfile::Builder::new()
            .prefix("mb-e2e-")
            .tempdir()
            .expect("creating a temporary folder");
        let root = std::fs::canonicalize(tmp.path()).expect("canonical temp path");
        let (home, cache, files) = (root.join("home"), root.join("cache"), root.join("files"));
        for dir in [&home, &cache, &files, &root.join("keys")] {
            std::fs::create_dir_all(dir).expect("creating a folder");
        }
        let scratch = root.join("scratch.git");
        gitx::init_bare(&scratch);
        let mut world = World {
            _tmp: tmp,
            bus: root.join("bus.git"),
            home,
            cache,
            scratch,
            files,
            requester: placeholder_key(),
            runner_key: placeholder_key(),
            allowed_signers: root.join("allowed_signers"),
            runner_signers: root.join("runner_signers"),
            work_dir: root.join("runner-work"),
            config: root.join("runner.yaml"),
            root,
        };
        let init = world
            .mb(&["init", "--bus", world.bus.to_str().unwrap(), "--json"])
            .ok();
        assert_eq!(
            init.json()["remote"],
            world.bus.display().to_string(),
            "{init}"
        );
        world.requester = world.keygen("requester");
        world.runner_key = world.keygen("runner");
        std::fs::write(
            &world.allowed_signers,
            format!(
                "{REQUESTER} namespaces=\"{REQUEST_NAMESPACE},macbridge-cancel-v1\" {}\n",
                world.requester.public_line
            ),
        )
        .expect("writing allowed_signers");
        std::fs::write(
            &world.runner_signers,
            format!(
                "{RUNNER} namespaces=\"{RESULT_NAMESPACE}\" {}\n",
                world.runner_key.public_line
            ),
        )
        .expect("writing runner_signers");
        world.write_config(&setup);
        world
    }

    /// (Re)write the runner config for `setup`.
    pub fn write_config(&self, setup: &RunnerSetup) {
        let mut yaml = format!(
            "remote: {}\nrunner_id: {RUNNER}\nkey: {}\nallowed_signers: {}\nwork_dir: {}\n\
             labels: [e2e, cpu]\npoll_seconds: 0.2\nheartbeat_seconds: 1\nlease_seconds: 10\n",
            quoted(&self.bus),
            quoted(&self.runner_key.path),
            quoted(&self.allowed_signers),
            quoted(&self.work_dir),
        );
        if setup.env.is_empty() {
            yaml.push_str("env: {}\n");
        } else {
            yaml.push_str("env:\n");
            for (k, v) in &setup.env {
                yaml.push_str(&format!("  {k}: {}\n", serde_json::to_string(v).unwrap()));
            }
        }
        if let Some(policy) = &setup.policy {
            let path = self.root.join("policy.yaml");
            std::fs::write(&path, policy).expect("writing the policy");
            yaml.push_str(&format!("policy: {}\n", quoted(&path)));
        }
        std::fs::write(&self.config, yaml).expect("writing runner.yaml");
    }

    /// Make a key pair with `macbridge keygen` under `keys/<name>`.
    #[track_caller]
    pub fn keygen(&self, name: &str) -> KeyPair {
        let path = self.root.join("keys").join(name);
        let out = self
            .mb(&[
                "keygen",
                "--out",
                path.to_str().unwrap(),
                "--comment",
                name,
                "--json",
            ])
            .ok();
        let info = out.json();
        let public = PathBuf::from(format!("{}.pub", path.display()));
        let text = std::fs::read_to_string(&public).expect("reading the public key");
        let public_line = text
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let fingerprint = craft::fingerprint(&public);
        assert_eq!(
            info["fingerprint"],
            fingerprint.as_str(),
            "keygen and ssh-keygen disagree"
        );
        KeyPair {
            path,
            public,
            public_line,
            fingerprint,
        }
    }

    /// Apply this world's isolation (HOME, client cache, no inherited macbridge settings).
    pub fn isolate<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        for var in [
            "MACBRIDGE_REMOTE",
            "MACBRIDGE_KEY",
            "MACBRIDGE_RUNNER_SIGNERS",
            "MACBRIDGE_RUNNER_CONFIG",
            "XDG_CACHE_HOME",
            "XDG_CONFIG_HOME",
            "KAKEYA_MODEL_DIR",
            // Tests that sign through an agent start their own and say so.
            "SSH_AUTH_SOCK",
            "GIT_CONFIG_GLOBAL",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("HOME", &self.home)
            .env("MACBRIDGE_CACHE", &self.cache)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .current_dir(&self.root)
    }

    /// Run `macbridge ARGS` in this world.
    pub fn mb(&self, args: &[&str]) -> Finished {
        let mut cmd = Command::new(bins::macbridge());
        self.isolate(&mut cmd).args(args);
        proc::run(&mut cmd, CMD_LIMIT)
    }

    /// Run `macbridge ARGS` in this world with extra environment variables.
    pub fn mb_env(&self, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Finished {
        let mut cmd = Command::new(bins::macbridge());
        self.isolate(&mut cmd).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        proc::run(&mut cmd, CMD_LIMIT)
    }

    /// `--remote BUS`, the flag every bus command needs.
    pub fn remote(&self) -> String {
        self.bus.display().to_string()
    }

    /// Run `macbridge request` for `preset` as the requester, with `extra` flags, `--json`.
    pub fn request_cli(&self, preset: &str, extra: &[&str]) -> Finished {
        let (remote, key) = (self.remote(), self.requester.path.display().to_string());
        let mut args = vec![
            "request", "--remote", &remote, "--key", &key, "--preset", preset,
        ];
        args.extend_from_slice(extra);
        args.push("--json");
        self.mb(&args)
    }

    /// Submit a request with the client; returns `(branch, request_id)`.
    #[track_caller]
    pub fn request(&self, preset: &str, extra: &[&str]) -> (String, String) {
        let out = self.request_cli(preset, extra).ok();
        let v = out.json();
        let branch = v["branch"]
            .as_str()
            .unwrap_or_else(|| panic!("no branch: {out}"));
        let id = v["request_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no request_id: {out}"));
        (branch.to_string(), id.to_string())
    }

    /// `macbridge status --json` for `branch`, which must succeed.
    #[track_caller]
    pub fn status(&self, branch: &str) -> Value {
        let remote = self.remote();
        self.mb(&["status", "--remote", &remote, "--branch", branch, "--json"])
            .ok()
            .json()
    }

    /// `macbridge-runner once --config runner.yaml --json`; returns the `handled` list.
    #[track_caller]
    pub fn runner_once(&self) -> Vec<Value> {
        let mut cmd = Command::new(bins::runner());
        self.isolate(&mut cmd)
            .args(["once", "--config"])
            .arg(&self.config)
            .arg("--json");
        let out = proc::run(&mut cmd, CMD_LIMIT).ok();
        out.json()["handled"]
            .as_array()
            .unwrap_or_else(|| panic!("no handled list: {out}"))
            .clone()
    }

    /// Start `macbridge-runner serve` in the background (log in `runner.log`).
    pub fn serve(&self) -> Background {
        let mut cmd = Command::new(bins::runner());
        self.isolate(&mut cmd)
            .args(["serve", "--config"])
            .arg(&self.config);
        Background::spawn(&mut cmd, &self.root.join("runner.log"))
    }

    /// Sign `sealed` with `key` in `namespace` using ssh-keygen.
    pub fn sign(&self, sealed: &Sealed, key: &KeyPair, namespace: &str) -> Vec<u8> {
        craft::ssh_sign(&key.path, namespace, &sealed.bytes, &self.files)
    }

    /// Build a request commit holding `files` under `.mac-bridge/` (on top of `base`, if
    /// given) and push it to the bus as `branch`. Returns the commit id.
    #[track_caller]
    pub fn push_files(&self, branch: &str, files: &[(&str, &[u8])], base: Option<&str>) -> String {
        let commit = gitx::request_commit(&self.scratch, files, base);
        gitx::push(&self.scratch, &self.bus, &commit, branch);
        commit
    }

    /// Seal `draft`, sign it as the requester in the request namespace, and push it to its
    /// own branch. Returns the sealed manifest and the commit id.
    #[track_caller]
    pub fn push_signed(&self, draft: &Draft) -> (Sealed, String) {
        let sealed = draft.seal();
        let sig = self.sign(&sealed, &self.requester, REQUEST_NAMESPACE);
        let commit = self.push_files(
            &sealed.branch,
            &[("request.json", &sealed.bytes), ("request.sig", &sig)],
            None,
        );
        (sealed, commit)
    }

    /// A fresh draft for `preset`, requested by this world's requester.
    pub fn draft(&self, preset: &str) -> Draft {
        Draft::new(preset, &self.requester.fingerprint)
    }

    /// Names of the entries of `work_dir/jobs/` (job folders), sorted.
    pub fn job_dirs(&self) -> Vec<String> {
        crate::gitx::sorted_entries(&self.work_dir.join("jobs"))
    }

    /// Every file called `name` anywhere under `work_dir/jobs/`.
    pub fn files_named(&self, name: &str) -> Vec<PathBuf> {
        fn walk(dir: &Path, name: &str, found: &mut Vec<PathBuf>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.filter_map(Result::ok) {
                let path = entry.path();
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&path, name, found);
                } else if entry.file_name() == name {
                    found.push(path);
                }
            }
        }
        let mut found = Vec::new();
        walk(&self.work_dir.join("jobs"), name, &mut found);
        found.sort();
        found
    }

    /// Request branches on the bus (full ref names).
    pub fn bus_branches(&self) -> Vec<String> {
        gitx::refs(&self.bus, "refs/heads/mac-bridge/")
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    /// Whether the bus holds a claim ref for `request_id`.
    pub fn claimed(&self, request_id: &str) -> bool {
        gitx::resolve(&self.bus, &format!("refs/mac-bridge/claims/{request_id}")).is_some()
    }

    /// `result.json` and `result.sig` at the tip of `branch` on the bus (full or short).
    pub fn result_on_bus(&self, branch: &str) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
        let rev = full_branch(branch);
        let json = gitx::read_file(&self.bus, &rev, ".mac-bridge/result.json")?;
        Some((
            json,
            gitx::read_file(&self.bus, &rev, ".mac-bridge/result.sig"),
        ))
    }

    /// Whether `signature` over `data` is the runner's, by `ssh-keygen -Y verify` against
    /// `runner_signers` in the result namespace.
    pub fn runner_signed(&self, data: &[u8], signature: &[u8]) -> bool {
        craft::ssh_verify(
            &self.runner_signers,
            RUNNER,
            RESULT_NAMESPACE,
            data,
            signature,
            &self.files,
        )
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

/// `mac-bridge/x` → `refs/heads/mac-bridge/x`; full refs unchanged.
pub fn full_branch(branch: &str) -> String {
    if branch.starts_with("refs/") {
        branch.to_string()
    } else {
        format!("refs/heads/{branch}")
    }
}

fn placeholder_key() -> KeyPair {
    KeyPair {
        path: PathBuf::new(),
        public: PathBuf::new(),
        public_line: String::new(),
        fingerprint: String::new(),
    }
}
