//! The runner config target: the runner's own `Config::load`, compiled in from its sources.

use crate::config;

/// Load `data` as a runner config file; a loaded config's own YAML loads again.
pub fn load(data: &[u8]) {
    let dir = super::scratch_dir();
    let path = dir.join("runner.yaml");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(cfg) = config::Config::load(&path) {
        let text = serde_saphyr::to_string(&cfg).expect("a loaded config serializes");
        std::fs::write(&path, text).expect("scratch write");
        config::Config::load(&path).expect("a loaded config's own YAML loads again");
    }
}
