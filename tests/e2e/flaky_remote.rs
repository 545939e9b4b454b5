//! A flaky remote: three runners reach the bus (`git daemon`) only through a TCP proxy that
//! drops 20 % of connections, resets 5 % part-way and delays 10 %. Every request still ends
//! with exactly one signed result, and no request's job completes twice.
//!
//! CI runs 30 requests; the 100 × 3 runs on demand:
//! `cargo test --release -p macbridge-e2e --test chaos flaky_remote_full -- --ignored --nocapture`.

use macbridge_e2e::scenarios::{assert_exactly_once, flaky_run};

#[test]
fn thirty_requests_through_a_flaky_remote_end_with_exactly_one_result_each() {
    let f = flaky_run(30, 3, 0x5eed_0010);
    assert_exactly_once(&f);
}
