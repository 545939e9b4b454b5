//! Every fuzz target on stable: its seed corpus, its recorded crashes (`regressions/`), then
//! deterministic random mutations of the seeds. `MACBRIDGE_FUZZ_MUTATIONS` sets how many per
//! target (default 3000). Run: `cargo test --release --manifest-path fuzz/Cargo.toml`.

use std::path::{Path, PathBuf};

use macbridge_fuzz::TARGETS;

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\\u0000",
    b"\\ud800",
    b"-0",
    b"1e999",
    b"18446744073709551616",
    b"null",
    b"\n",
    b"  ",
    b"\xff",
    b"\xc3\x28",
    b"=",
    b"*",
    b"!",
    b"..",
    b"/",
    b"../",
    b"\0",
];

fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(7) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            2 if at < v.len() => {
                let end = (at + 1 + rng.below(16)).min(v.len());
                v.drain(at..end);
            }
            3 => {
                let word = INTERESTING[rng.below(INTERESTING.len())];
                v.splice(at..at, word.iter().copied());
            }
            4 if !other.is_empty() => {
                // Splice a piece of another seed in.
                let from = rng.below(other.len());
                let end = (from + 1 + rng.below(64)).min(other.len());
                v.splice(at..at, other[from..end].iter().copied());
            }
            5 if at < v.len() => {
                // Duplicate a run (nesting, repeated keys).
                let end = (at + 1 + rng.below(32)).min(v.len());
                let piece: Vec<u8> = v[at..end].to_vec();
                v.splice(at..at, piece);
            }
            _ => v.truncate(at),
        }
    }
    v
}

#[test]
fn every_target_survives_its_corpus_its_regressions_and_mutations() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mutations: usize = std::env::var("MACBRIDGE_FUZZ_MUTATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    for (name, target) in TARGETS {
        let seeds: Vec<Vec<u8>> = files(&root.join("corpus").join(name))
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect();
        assert!(!seeds.is_empty(), "target {name} has no seed corpus");
        for path in files(&root.join("regressions").join(name)) {
            target(&std::fs::read(&path).unwrap());
        }
        for seed in &seeds {
            target(seed);
        }
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ name.len() as u64);
        for i in 0..mutations {
            let seed = &seeds[i % seeds.len()];
            let other = &seeds[rng.below(seeds.len())];
            let input = mutate(&mut rng, seed, other);
            let caught = std::panic::catch_unwind(|| target(&input));
            if caught.is_err() {
                panic!(
                    "target {name} panicked on mutation {i}: {:?}",
                    String::from_utf8_lossy(&input)
                );
            }
        }
        eprintln!("{name}: {} seeds, {mutations} mutations", seeds.len());
    }
}
