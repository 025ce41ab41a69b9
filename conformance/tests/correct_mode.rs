//! The reference backend in its correct mode passes every rule of every profile.

mod common;

use conformance::outcome::Verdict;
use conformance::rules::Profile;
use conformance::runner::Selection;
use conformance::timeouts::Timeouts;
use sim_boot::Misbehaviour;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_boot_passes_every_profile() {
    let run = common::certify(
        Misbehaviour::None,
        Selection::profiles(&Profile::ALL),
        Timeouts::default(),
        Duration::ZERO,
    )
    .await;
    println!("{}", run.report.to_markdown());
    let not_passed: Vec<_> = run
        .result
        .rules
        .iter()
        .filter(|r| r.requested && r.verdict != Verdict::Pass)
        .collect();
    assert!(not_passed.is_empty(), "{not_passed:#?}");
    assert!(run.leftovers.is_empty(), "cleanup left {:?}", run.leftovers);
}
