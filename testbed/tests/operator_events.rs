//! The operator's Events carry the run's clock: stamped from `Clock::simulated`, repeats within the series window
//! counted on one Event, and no name collisions when many Events share one paused instant.

use std::time::Duration;

use clock::Clock;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use kube::api::Api;
use operator::events::{EventRecorder, SERIES_WINDOW};

fn regarding(name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("metal.ironcore.dev/v1alpha1".into()),
        kind: Some("Server".into()),
        name: Some(name.into()),
        namespace: Some("default".into()),
        ..ObjectReference::default()
    }
}

#[tokio::test(start_paused = true)]
async fn events_are_stamped_from_the_clock_and_repeats_become_a_series() {
    let api = apiserver::Server::start(apiserver::Options::default())
        .await
        .unwrap();
    let client = kube::Client::new(api.router(), "default");
    let epoch: clock::Timestamp = "2026-06-01T08:00:00Z".parse().unwrap();
    let recorder = EventRecorder::new(
        client.clone(),
        "metal-operator",
        None,
        Clock::simulated(epoch),
    );
    let server = regarding("s1");
    for _ in 0..3 {
        recorder
            .publish(&server, "Normal", "Discovered", "Discover", None)
            .await
            .unwrap();
    }
    // Another object at the same instant gets its own Event (names must not collide on a paused clock).
    recorder
        .publish(&regarding("s2"), "Normal", "Discovered", "Discover", None)
        .await
        .unwrap();
    tokio::time::sleep(SERIES_WINDOW + Duration::from_secs(1)).await;
    recorder
        .publish(&server, "Normal", "Discovered", "Discover", None)
        .await
        .unwrap();
    let events = Api::<Event>::namespaced(client, "default")
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    let times: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e.regarding.as_ref().and_then(|r| r.name.clone()).unwrap(),
                e.event_time.as_ref().unwrap().0.to_string(),
                e.series.as_ref().map(|s| s.count),
            )
        })
        .collect();
    assert_eq!(events.len(), 3, "{times:?}");
    assert!(
        times.contains(&("s1".into(), "2026-06-01T08:00:00Z".into(), Some(3))),
        "{times:?}"
    );
    assert!(
        times.contains(&("s2".into(), "2026-06-01T08:00:00Z".into(), None)),
        "{times:?}"
    );
    assert!(
        times.contains(&("s1".into(), "2026-06-01T08:06:01Z".into(), None)),
        "{times:?}"
    );
    api.shutdown().await;
}
