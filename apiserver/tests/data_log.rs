//! The data log finds damage instead of parsing around it (issue #14): damage before the tail stops the start with
//! the file and offset and changes nothing, a torn tail is dropped, only the repair command drops damaged records,
//! resourceVersions never go backwards, and logs written before checksums still load.

use std::path::Path;

use apiserver::{Options, Server};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, PostParams};

fn cm(name: &str) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.into());
    c.data = Some([("k".to_string(), name.to_string())].into());
    c
}

fn opts(dir: &Path) -> Options {
    Options {
        data_dir: Some(dir.to_path_buf()),
        controllers: false,
        ..Default::default()
    }
}

/// Writes `names` and returns the last resourceVersion handed out.
async fn write(dir: &Path, names: &[&str]) -> u64 {
    let h = Server::start(opts(dir)).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(h.client(), "default");
    let mut last = 0;
    for n in names {
        let c = api.create(&PostParams::default(), &cm(n)).await.unwrap();
        last = c.resource_version().unwrap().parse().unwrap();
    }
    h.shutdown().await;
    last
}

async fn names_of(dir: &Path) -> (Vec<String>, u64) {
    let h = Server::start(opts(dir)).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(h.client(), "default");
    let mut names: Vec<String> = api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| c.name_any())
        .filter(|n| !n.starts_with("next-"))
        .collect();
    names.sort();
    let mut probe = cm("");
    probe.metadata.name = None;
    probe.metadata.generate_name = Some("next-".into());
    let next = api.create(&PostParams::default(), &probe).await.unwrap();
    h.shutdown().await;
    (names, next.resource_version().unwrap().parse().unwrap())
}

/// The byte offset of the line holding `needle`.
fn line_offset(log: &[u8], needle: &str) -> usize {
    let at = log
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .unwrap();
    log[..at]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |n| n + 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_before_the_tail_stops_the_start_until_a_person_repairs() {
    let dir = tempfile::tempdir().unwrap();
    let last = write(dir.path(), &["a", "b", "c"]).await;
    let path = dir.path().join("objects.log");
    let mut log = std::fs::read(&path).unwrap();
    // One garbled byte in the middle of b's record.
    let at = line_offset(&log, "\"n\":\"b\"") + 30;
    log[at] ^= 0x20;
    std::fs::write(&path, &log).unwrap();
    let err = match Server::start(opts(dir.path())).await {
        Ok(_) => panic!("a damaged log must stop the start"),
        Err(e) => e.to_string(),
    };
    let offset = line_offset(&log, "\"n\":\"b\"");
    assert!(err.contains("objects.log"), "{err}");
    assert!(err.contains(&format!("offset {offset}")), "{err}");
    assert!(err.contains("--repair-data-log"), "{err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        log,
        "nothing changed on its own"
    );
    // The documented command, as a person runs it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_apiserver"))
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--repair-data-log")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("dropped 1 damaged"), "{said}");
    let (names, next_rv) = names_of(dir.path()).await;
    assert_eq!(
        names,
        ["a", "c"],
        "every intact record after the damage is kept"
    );
    assert!(
        next_rv > last,
        "resourceVersions never go backwards: {next_rv} after {last}"
    );
    let backups = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("damaged")
        })
        .count();
    assert_eq!(backups, 1, "the damaged log is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_dropped_and_its_resource_version_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    let last = write(dir.path(), &["a", "b"]).await;
    let path = dir.path().join("objects.log");
    let mut log = std::fs::read(&path).unwrap();
    let torn_rv = last + 7;
    log.extend_from_slice(
        format!("{{\"rv\":{torn_rv},\"r\":\"/configmaps\",\"ns\":\"default\",\"n\":\"tor")
            .as_bytes(),
    );
    std::fs::write(&path, &log).unwrap();
    let (names, next_rv) = names_of(dir.path()).await;
    assert_eq!(names, ["a", "b"]);
    assert!(
        next_rv > torn_rv,
        "{next_rv} reuses a resourceVersion a torn write may have shown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_written_before_checksums_still_load_and_are_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    // The format main wrote: a compaction marker, then one JSON record per line, no checksums.
    let ns = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"default","uid":"u0","creationTimestamp":"2026-01-01T00:00:00Z"},"spec":{"finalizers":["kubernetes"]},"status":{"phase":"Active"}}"#;
    let old = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"old","namespace":"default","uid":"u1","creationTimestamp":"2026-01-01T00:00:00Z"},"data":{"k":"v"}}"#;
    let log = format!(
        "{{\"rv\":5,\"r\":\"\",\"ns\":\"\",\"n\":\"\",\"o\":null}}\n{{\"rv\":2,\"r\":\"/namespaces\",\"ns\":\"\",\"n\":\"default\",\"o\":{ns}}}\n{{\"rv\":9,\"r\":\"/configmaps\",\"ns\":\"default\",\"n\":\"old\",\"o\":{old}}}\n"
    );
    std::fs::write(dir.path().join("objects.log"), log).unwrap();
    let (names, next_rv) = names_of(dir.path()).await;
    assert_eq!(names, ["old"]);
    assert!(next_rv > 9);
    let upgraded = std::fs::read_to_string(dir.path().join("objects.log")).unwrap();
    assert!(
        upgraded
            .lines()
            .all(|l| l.rsplit_once('\t').is_some_and(|(_, c)| c.len() == 8)),
        "every record carries a checksum after the upgrade:\n{upgraded}"
    );
    let (again, _) = names_of(dir.path()).await;
    assert_eq!(again, ["old"], "the upgraded log loads again");
}
