//! Property tests: any sequence of resets and waits keeps the power state machine consistent with its
//! event log, and no request body makes a handler fail with a 5xx.

mod common;

use std::time::Duration;

use common::Client;
use proptest::prelude::*;
use sim_bmc::vendor::Vendor;
use sim_bmc::{BindMode, Fleet, FleetOptions, FleetSpec, MachineEventKind, PowerState};

const FLEET: &str = "seed: 1\nbmcs:\n  - name: p\n    vendor: dell\n    latencies: {powerOnMs: 30, powerOffMs: 20, gracefulShutdownMs: 25, postMs: 5}\n";
const SYS: &str = "/redfish/v1/Systems/System.Embedded.1";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

#[derive(Debug, Clone)]
enum Step {
    Reset(&'static str),
    Wait(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        // Every reset type the fleet's Dell BMC advertises, so each one must be accepted or refused with 409.
        prop::sample::select(Vendor::Dell.system_reset_types()).prop_map(Step::Reset),
        (0u64..60).prop_map(Step::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn power_state_always_matches_the_event_log(steps in prop::collection::vec(step(), 1..25)) {
        runtime().block_on(async {
            let spec = FleetSpec::from_yaml(FLEET).unwrap();
            let fleet = Fleet::start(spec, FleetOptions { bind: BindMode::InProcess, ..Default::default() }).await.unwrap();
            let c = Client::new(&fleet, "p");
            let machine = fleet.machine(&fleet.bmcs()[0].systems[0].uuid).unwrap();
            for s in steps {
                match s {
                    Step::Reset(t) => {
                        let r = c.post(&format!("{SYS}/Actions/ComputerSystem.Reset"), &format!(r#"{{"ResetType":"{t}"}}"#)).await;
                        assert!(matches!(r.status.as_u16(), 204 | 409), "{t}: {}", r.status);
                    }
                    Step::Wait(ms) => tokio::time::advance(Duration::from_millis(ms)).await,
                }
                let reported = c.get(SYS).await.json["PowerState"].as_str().unwrap().to_string();
                let events = machine.events();
                let last = events.iter().rev().find_map(|e| match &e.kind {
                    MachineEventKind::PowerStateChanged { to, .. } => Some(*to),
                    _ => None,
                }).unwrap_or(PowerState::Off);
                assert_eq!(reported, last.as_str(), "the last logged transition is what clients see");
                assert!(events.windows(2).all(|w| w[0].seq + 1 == w[1].seq && w[0].at <= w[1].at));
            }
        });
    }

    #[test]
    fn arbitrary_patch_bodies_never_cause_a_server_error(body in "\\PC{0,64}", key in "[A-Za-z@]{1,12}", value in any::<i64>()) {
        runtime().block_on(async {
            let spec = FleetSpec::from_yaml(FLEET).unwrap();
            let fleet = Fleet::start(spec, FleetOptions { bind: BindMode::InProcess, ..Default::default() }).await.unwrap();
            let c = Client::new(&fleet, "p");
            for b in [body.clone(), format!(r#"{{"{key}":{value}}}"#), format!(r#"{{"Boot":{{"{key}":{value}}}}}"#)] {
                let r = c.patch(SYS, &b).await;
                assert!(r.status.as_u16() < 500, "{b:?}: {}", r.status);
                let r = c.post(&format!("{SYS}/Actions/ComputerSystem.Reset"), &b).await;
                assert!(r.status.as_u16() < 500, "{b:?}: {}", r.status);
            }
        });
    }
}
