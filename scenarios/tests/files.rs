//! Every shipped scenario and regression file is valid, and the committed JSON Schema matches the types.

use std::path::{Path, PathBuf};

use scenarios::spec::{self, Scenario};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("directory exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn shipped_scenarios_are_valid() {
    let files = yaml_files(&crate_dir());
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for wanted in [
        "quickstart",
        "fleet-1000",
        "flaky-bmcs",
        "slow-backend",
        "lying-backend",
        "claim-churn",
        "discovery",
    ] {
        assert!(
            names.iter().any(|n| n == wanted),
            "{wanted}.yaml is missing"
        );
    }
    for file in files {
        let scenario = spec::load_file(&file).unwrap_or_else(|e| panic!("{e}"));
        // What we write back (regressions) must load again unchanged.
        let again = spec::parse("roundtrip", &scenario.to_yaml()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again, scenario, "{} does not round-trip", file.display());
    }
}

#[test]
fn regression_files_are_valid() {
    for file in yaml_files(&crate_dir().join("regressions")) {
        spec::load_file(&file).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn committed_schema_matches_the_types() {
    let path = crate_dir().join("schema/scenario.schema.json");
    let generated = serde_json::to_string_pretty(&Scenario::json_schema()).unwrap() + "\n";
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale: run `UPDATE_SCHEMA=1 cargo test -p scenarios --test files` and commit it",
        path.display()
    );
}

/// `metal-harness validate FILE`.
fn validate(file: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_metal-harness"))
        .args(["validate"])
        .arg(file)
        .output()
        .unwrap()
}

/// `metal-harness validate` on a file `name` holding `yaml`: it must exit 2; returns its stderr.
fn refused_yaml(name: &str, yaml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    std::fs::write(&file, yaml).unwrap();
    let out = validate(&file);
    assert_eq!(out.status.code(), Some(2));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn validate_exits_2_with_line_and_column() {
    let unknown_vendor = "name: bad\nfleet:\n  bmcs: 2\n  vendors: [dell, ibm]\n";
    let stderr = refused_yaml("bad.yaml", unknown_vendor);
    assert!(stderr.contains("bad.yaml:4:"), "{stderr}");
    let good = validate(&crate_dir().join("quickstart.yaml"));
    assert_eq!(
        good.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
}

#[test]
fn validate_lists_the_sim_boot_modes_for_an_unknown_one() {
    let unknown_mode =
        "name: mode\nfleet:\n  bmcs: 1\nbackend:\n  simBoot:\n    mode: always-ready\n";
    let stderr = refused_yaml("mode.yaml", unknown_mode);
    assert!(stderr.contains("mode.yaml:5:"), "{stderr}");
    assert!(
        stderr.contains("unknown sim-boot mode \"always-ready\""),
        "{stderr}"
    );
    for mode in sim_boot::Misbehaviour::ALL {
        assert!(stderr.contains(mode.name()), "{stderr} lacks {mode}");
    }
}

#[test]
fn schema_enumerates_every_sim_boot_mode() {
    // The simBoot backend's `mode` property, wherever schemars nests it.
    fn find_mode_enum(v: &serde_json::Value) -> Option<Vec<String>> {
        match v {
            serde_json::Value::Object(map) => {
                if let Some(values) = map
                    .get("simBoot")
                    .and_then(|b| b.pointer("/properties/mode/enum"))
                {
                    return serde_json::from_value(values.clone()).ok();
                }
                map.values().find_map(find_mode_enum)
            }
            serde_json::Value::Array(items) => items.iter().find_map(find_mode_enum),
            _ => None,
        }
    }
    let modes = find_mode_enum(&Scenario::json_schema()).expect("simBoot.mode has an enum");
    let expected: Vec<String> = sim_boot::Misbehaviour::BEHAVIOURS
        .into_iter()
        .chain(sim_boot::Misbehaviour::ALL)
        .map(|m| m.name().to_string())
        .collect();
    assert_eq!(modes, expected);
}
