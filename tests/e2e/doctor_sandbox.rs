//! `macbridge-runner doctor` reports whether the workload sandbox can be applied here and what
//! the config asks for (`sandbox` in `--json`, the `workload_sandbox` check line).

use macbridge_e2e::RunnerOpts;
use serde_json::Value;

use crate::harness::*;

fn sandbox_check(doc: &Value) -> Value {
    doc["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "workload_sandbox"))
        .cloned()
        .unwrap_or_else(|| panic!("no workload_sandbox check: {doc}"))
}

/// Whether landlock is listed among the kernel's active security modules (Linux), where
/// securityfs is mounted to say so.
fn landlock_listed() -> Option<bool> {
    std::fs::read_to_string("/sys/kernel/security/lsm")
        .ok()
        .map(|l| l.contains("landlock"))
}

#[test]
fn doctor_reports_whether_the_workload_sandbox_can_be_applied() {
    let w = World::new();
    let a = w.add_runner("mac-a", &RunnerOpts::default());
    let doc = a.doctor_json(&w);
    let sandbox = &doc["sandbox"];
    assert_eq!(sandbox["enabled"], true, "{doc}");
    assert!(sandbox["available"].is_boolean(), "{doc}");
    assert!(
        sandbox["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{doc}"
    );
    assert_eq!(sandbox["network_presets"], serde_json::json!([]), "{doc}");
    let check = sandbox_check(&doc);
    let available = sandbox["available"] == true;
    assert_eq!(
        check["status"],
        if available { "ok" } else { "warn" },
        "{check}"
    );
    if cfg!(target_os = "linux") {
        assert_eq!(sandbox["mechanism"], "landlock", "{doc}");
        let abi = sandbox["landlock_abi"]
            .as_i64()
            .expect("landlock_abi on Linux");
        assert!(abi >= 0);
        assert!(sandbox["network_namespace"].is_boolean(), "{doc}");
        assert!(sandbox["sandbox_exec"].is_null(), "{doc}");
        // The kernel's own answer, read another way: landlock active ⇔ an ABI version.
        if let Some(listed) = landlock_listed() {
            assert_eq!(abi >= 1, listed, "{doc}");
        }
        // Without landlock nothing can be confined.
        if abi < 1 {
            assert!(!available, "{doc}");
        }
        if available {
            assert!(
                check["detail"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("landlock ABI v{abi}")),
                "{check}"
            );
        } else {
            assert!(
                check["detail"].as_str().unwrap().contains("refused"),
                "{check}"
            );
        }
    }
    if cfg!(target_os = "macos") {
        assert_eq!(sandbox["mechanism"], "sandbox-exec", "{doc}");
        assert!(sandbox["landlock_abi"].is_null(), "{doc}");
        assert_eq!(
            sandbox["sandbox_exec"],
            std::path::Path::new("/usr/bin/sandbox-exec").exists(),
            "{doc}"
        );
    }

    // The operator's opt-out is reported as such, with the network grants.
    let mut config = std::fs::read_to_string(&a.config).unwrap();
    config.push_str("workload_sandbox:\n  enabled: false\n  network_presets: [cargo-test]\n");
    std::fs::write(&a.config, config).unwrap();
    let doc = a.doctor_json(&w);
    let sandbox = &doc["sandbox"];
    assert_eq!(sandbox["enabled"], false, "{doc}");
    assert_eq!(
        sandbox["network_presets"],
        serde_json::json!(["cargo-test"]),
        "{doc}"
    );
    let check = sandbox_check(&doc);
    assert_eq!(check["status"], "warn", "{check}");
    assert!(
        check["detail"].as_str().unwrap().contains("unconfined"),
        "{check}"
    );

    // A config that does not load: no sandbox object, the config check fails.
    std::fs::write(&a.config, "remote: [").unwrap();
    let doc = a.doctor_json(&w);
    assert!(doc["sandbox"].is_null(), "{doc}");
    assert_eq!(doc["checks"][0]["status"], "fail", "{doc}");
}
