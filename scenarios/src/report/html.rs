//! A self-contained HTML page with an inline SVG timeline: one lane per server showing its states,
//! power, resets, boots and violations, with faults as bands across the top.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Report, ms};
use crate::evidence::{Event, Evidence, MachineObs, Snapshot};

/// Lanes drawn at most (a 10,000-server run would not be readable anyway).
const MAX_LANES: usize = 200;
const LANE_H: f64 = 18.0;
const LEFT: f64 = 150.0;
const WIDTH: f64 = 1200.0;
const TOP: f64 = 40.0;

#[derive(Default)]
struct Lane {
    states: Vec<(u64, String)>,
    power: Vec<(u64, bool)>,
    marks: Vec<(u64, &'static str, String)>,
}

/// Lane colours of the Server states the legend explains, in lifecycle order.
const STATE_COLOURS: [(&str, &str); 6] = [
    ("Initial", "#c8c8c8"),
    ("Discovery", "#7fb3e6"),
    ("Available", "#8fd18f"),
    ("Reserved", "#f2b84b"),
    ("Released", "#c49be0"),
    ("Error", "#e06666"),
];

fn state_colour(state: &str) -> &'static str {
    match STATE_COLOURS.iter().find(|(known, _)| *known == state) {
        Some((_, colour)) => colour,
        // Drawn but left out of the legend.
        None if state == "Maintenance" => "#999966",
        None => "#dddddd",
    }
}

fn lanes(evidence: &[Evidence]) -> BTreeMap<String, Lane> {
    let mut lanes: BTreeMap<String, Lane> = BTreeMap::new();
    let mut server_of: BTreeMap<String, String> = BTreeMap::new();
    for ev in evidence {
        match &ev.event {
            Event::Api {
                object: Snapshot::Server(s),
                deleted,
            } => {
                if let Some(u) = &s.uuid {
                    server_of.insert(u.clone(), s.name.clone());
                }
                let lane = lanes.entry(s.name.clone()).or_default();
                let state = if *deleted {
                    "deleted".to_string()
                } else {
                    s.state.clone().unwrap_or_else(|| "Initial".into())
                };
                if lane.states.last().map(|(_, st)| st) != Some(&state) {
                    lane.states.push((ev.at_ms, state));
                }
            }
            Event::Machine { uuid, what } => {
                let Some(name) = server_of.get(uuid) else {
                    continue;
                };
                let lane = lanes.entry(name.clone()).or_default();
                match what {
                    MachineObs::PowerChanged { to } => lane.power.push((ev.at_ms, to == "On")),
                    MachineObs::ResetRequested { reset_type, .. } => {
                        lane.marks.push((ev.at_ms, "reset", reset_type.clone()))
                    }
                    MachineObs::BootSucceeded { image, .. } => {
                        lane.marks
                            .push((ev.at_ms, "boot", format!("booted {image}")))
                    }
                    MachineObs::BootFailed { reason } => {
                        lane.marks
                            .push((ev.at_ms, "fail", format!("boot failed: {reason}")))
                    }
                    MachineObs::BootAttempt { .. } => {}
                }
            }
            _ => {}
        }
    }
    lanes
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders the page.
pub fn render(report: &Report, evidence: &[Evidence]) -> String {
    let end = evidence
        .last()
        .map(|e| e.at_ms)
        .unwrap_or(0)
        .max(report.duration_ms)
        .max(1);
    let x = |t: u64| LEFT + (t as f64 / end as f64) * (WIDTH - LEFT - 10.0);
    let all = lanes(evidence);
    let shown: Vec<(&String, &Lane)> = all.iter().take(MAX_LANES).collect();
    let height = TOP + LANE_H * shown.len() as f64 + 30.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    for f in &report.faults {
        let (a, b) = (x(f.at_ms), x(f.until_ms.unwrap_or(f.at_ms + end / 200)));
        let _ = write!(
            svg,
            r##"<rect x="{a:.1}" y="0" width="{:.1}" height="{height}" fill="#ff000018"><title>{}</title></rect><text x="{a:.1}" y="12" fill="#a00">{}</text>"##,
            (b - a).max(2.0),
            esc(&f.label),
            esc(&f.label)
        );
    }
    for i in 0..=10 {
        let t = end * i / 10;
        let _ = write!(
            svg,
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="24" y2="{height}" stroke="#eee"/><text x="{0:.1}" y="34" fill="#666">{1}</text>"##,
            x(t),
            ms(t)
        );
    }
    let violations_by_server: BTreeMap<String, Vec<&crate::invariants::Violation>> =
        report.violations.iter().fold(BTreeMap::new(), |mut m, v| {
            m.entry(v.subject.trim_start_matches("server ").to_string())
                .or_default()
                .push(v);
            m
        });
    for (row, (name, lane)) in shown.iter().enumerate() {
        let y = TOP + row as f64 * LANE_H;
        let _ = write!(
            svg,
            r#"<text x="4" y="{:.1}">{}</text>"#,
            y + 12.0,
            esc(name)
        );
        for (i, (at, state)) in lane.states.iter().enumerate() {
            let until = lane.states.get(i + 1).map(|s| s.0).unwrap_or(end);
            let _ = write!(
                svg,
                r#"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="11" fill="{}"><title>{} from {}</title></rect>"#,
                x(*at),
                (x(until) - x(*at)).max(1.0),
                state_colour(state),
                esc(state),
                ms(*at)
            );
        }
        for (i, (at, on)) in lane.power.iter().enumerate() {
            if !on {
                continue;
            }
            let until = lane.power.get(i + 1).map(|p| p.0).unwrap_or(end);
            let _ = write!(
                svg,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="3" fill="#222"><title>powered on at {}</title></rect>"##,
                x(*at),
                y + 12.0,
                (x(until) - x(*at)).max(1.0),
                ms(*at)
            );
        }
        for (at, kind, text) in &lane.marks {
            let (shape, colour) = match *kind {
                "reset" => ("M0,-5 L4,3 L-4,3 Z", "#333"),
                "boot" => ("M-4,0 A4,4 0 1,0 4,0 A4,4 0 1,0 -4,0", "#1a8f1a"),
                _ => ("M-4,-4 L4,4 M4,-4 L-4,4", "#d00"),
            };
            let _ = write!(
                svg,
                r#"<path transform="translate({:.1},{:.1})" d="{shape}" fill="{colour}" stroke="{colour}" stroke-width="1.5"><title>{} at {}</title></path>"#,
                x(*at),
                y + 6.0,
                esc(text),
                ms(*at)
            );
        }
        for v in violations_by_server
            .get(name.as_str())
            .into_iter()
            .flatten()
        {
            let _ = write!(
                svg,
                r#"<line x1="{0:.1}" x2="{0:.1}" y1="{1:.1}" y2="{2:.1}" stroke="red" stroke-width="3"><title>{3}: {4}</title></line>"#,
                x(v.at_ms),
                y - 2.0,
                y + 16.0,
                esc(&v.invariant),
                esc(&v.message)
            );
        }
    }
    svg.push_str("</svg>");
    page(report, &svg, all.len())
}

fn page(report: &Report, svg: &str, lanes: usize) -> String {
    let mut rows = String::new();
    for v in &report.invariants {
        let colour = if v.ok { "#1a8f1a" } else { "#d00" };
        let _ = write!(
            rows,
            r#"<tr><td>{}</td><td>{}</td><td style="color:{colour}">{}</td><td>{}</td></tr>"#,
            esc(&v.invariant),
            v.violations,
            esc(&v.verdict),
            esc(&v.description)
        );
    }
    let mut phases = String::new();
    for (p, s) in &report.phases {
        let _ = write!(
            phases,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(p),
            s.count,
            ms(s.p50),
            ms(s.p90),
            ms(s.p99),
            ms(s.max)
        );
    }
    let legend: String = STATE_COLOURS
        .iter()
        .map(|(s, colour)| {
            format!(
                r#"<span style="background:{colour};padding:0 6px;margin-right:4px">{s}</span>"#
            )
        })
        .collect();
    let note = if lanes > MAX_LANES {
        format!("<p>Showing the first {MAX_LANES} of {lanes} servers.</p>")
    } else {
        String::new()
    };
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>{name} — metal-harness</title>
<style>body{{font-family:sans-serif;margin:20px}}table{{border-collapse:collapse;margin:8px 0}}td,th{{border:1px solid #ccc;padding:2px 8px;font-size:13px}}</style></head>
<body><h1>{name} <small>seed {seed} · {length} · {verdict}</small></h1>
<table><tr><th>phase</th><th>n</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>{phases}</table>
<table><tr><th>invariant</th><th>violations</th><th>verdict</th><th>what must hold</th></tr>{rows}</table>
<p>{legend} <b>▬</b> powered on · ▲ reset request · ● booted · ✕ boot failed · <span style="color:red">|</span> violation · red bands: faults</p>{note}
{svg}</body></html>"#,
        name = esc(&report.scenario),
        seed = report.seed,
        length = esc(&report.length()),
        verdict = if report.passed { "PASSED" } else { "FAILED" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_colours_cover_the_legend_and_the_states_outside_it() {
        assert_eq!(state_colour("Initial"), "#c8c8c8");
        assert_eq!(state_colour("Error"), "#e06666");
        assert_eq!(state_colour("Maintenance"), "#999966");
        assert_eq!(state_colour("Parked"), "#dddddd");
    }
}
