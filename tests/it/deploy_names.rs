//! The alert rules and the dashboard name only metrics the worker exports, and the dashboard shows
//! every one. A renamed metric fails here, instead of as an alert that can never fire or an empty
//! panel. PromQL syntax and the rules' behaviour are scripts/check-deploy's (promtool).

use serde_json::Value;
use std::collections::BTreeSet;

const RULES: &str = "deploy/prometheus/rules/esurio.yml";
const DASHBOARD: &str = "deploy/grafana/esurio.json";

/// The worker's histograms: PromQL names their `_bucket`, `_sum` and `_count` series.
const HISTOGRAMS: &[&str] = &[
    "esurio_batch_records",
    "esurio_copy_duration_seconds",
    "esurio_commit_duration_seconds",
    "esurio_end_to_end_latency_seconds",
];

/// What a name the worker exports starts with. Anything else (`up`, labels, functions) is not ours.
const PREFIXES: &[&str] = &["esurio_", "kafka_", "process_"];

fn read(path: &str) -> String {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The `expr` of every rule of a Prometheus rule file, inline (`expr: a > 1`, maybe quoted) or a
/// block scalar (`expr: |` and the lines indented under it). Enough YAML for a rule file; the test
/// below checks it found one expression per rule, so a shape it misreads fails loudly.
fn rule_exprs(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut exprs = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let body = line.trim_start();
        let indent = line.len() - body.len();
        let Some(rest) = body
            .strip_prefix("expr:")
            .or_else(|| body.strip_prefix("- expr:"))
        else {
            i += 1;
            continue;
        };
        let rest = rest.trim();
        i += 1;
        if rest.starts_with('|') || rest.starts_with('>') {
            let mut text = String::new();
            while i < lines.len() {
                let next = lines[i];
                let next_indent = next.len() - next.trim_start().len();
                if !next.trim().is_empty() && next_indent <= indent {
                    break;
                }
                text.push_str(next);
                text.push('\n');
                i += 1;
            }
            exprs.push(text);
        } else {
            let unquoted = rest
                .strip_prefix('\'')
                .and_then(|r| r.strip_suffix('\''))
                .or_else(|| rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')))
                .unwrap_or(rest);
            exprs.push(unquoted.to_string());
        }
    }
    exprs
}

/// Every query of a Grafana dashboard: panel targets' `expr` and templating variables' `query`.
fn dashboard_exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match v {
                    Value::String(s) if key == "expr" || key == "query" => out.push(s.clone()),
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

/// The metric names in a PromQL expression: whole identifiers (a recording rule's name, which has
/// colons, is one identifier and is skipped) starting with one of [`PREFIXES`], a histogram's
/// series suffix taken off.
fn metric_names_in(expr: &str) -> Vec<String> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = Vec::new();
    let mut chars = expr.char_indices().peekable();
    let mut previous: Option<char> = None;
    while let Some((start, c)) = chars.next() {
        if !is_ident(c) || previous.is_some_and(is_ident) {
            previous = Some(c);
            continue;
        }
        let mut end = start + c.len_utf8();
        let mut last = c;
        while let Some(&(i, next)) = chars.peek() {
            if !is_ident(next) {
                break;
            }
            end = i + next.len_utf8();
            last = next;
            chars.next();
        }
        previous = Some(last);
        let token = &expr[start..end];
        if token.contains(':') || !PREFIXES.iter().any(|p| token.starts_with(p)) {
            continue;
        }
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| token.strip_suffix(suffix))
            .find(|base| HISTOGRAMS.contains(base))
            .unwrap_or(token);
        names.push(base.to_string());
    }
    names
}

/// The names each file uses, by file.
fn used_names() -> Vec<(&'static str, BTreeSet<String>)> {
    let rules = read(RULES);
    let exprs = rule_exprs(&rules);
    let rule_count = rules
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("- record:") || l.starts_with("- alert:"))
        .count();
    assert_eq!(
        exprs.len(),
        rule_count,
        "{RULES}: found {} expressions for {rule_count} rules",
        exprs.len()
    );
    let from_rules: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names_in(e)).collect();

    let dashboard: Value = serde_json::from_str(&read(DASHBOARD))
        .unwrap_or_else(|e| panic!("{DASHBOARD} is not JSON: {e}"));
    let mut queries = Vec::new();
    dashboard_exprs(&dashboard, &mut queries);
    let from_dashboard: BTreeSet<String> =
        queries.iter().flat_map(|e| metric_names_in(e)).collect();

    // Not vacuous: the tokenizer or the readers finding nothing must fail, not pass.
    assert!(from_rules.len() >= 10, "{RULES}: only {from_rules:?} found");
    assert!(
        from_dashboard.len() >= 15,
        "{DASHBOARD}: only {from_dashboard:?} found"
    );
    vec![(RULES, from_rules), (DASHBOARD, from_dashboard)]
}

#[test]
fn the_tokenizer_finds_metric_names_and_skips_the_rest() {
    assert_eq!(
        metric_names_in(
            r#"histogram_quantile(0.99, sum by (le) (rate(esurio_copy_duration_seconds_bucket{job="esurio"}[5m])))
               / esurio:group_lag:sum + up + process_cpu_seconds_total + my_esurio_x
               + esurio_rows_written_total_count"#
        ),
        [
            "esurio_copy_duration_seconds",
            "process_cpu_seconds_total",
            // Not a histogram: kept whole, so the export check refuses it.
            "esurio_rows_written_total_count",
        ]
    );
    assert_eq!(
        rule_exprs("- record: a:b\n  expr: x_total > 1\n- alert: A\n  expr: |\n    y\n      > 2\n  for: 1m\n- alert: B\n  expr: 'z'\n"),
        ["x_total > 1", "    y\n      > 2\n", "z"]
    );
}

#[test]
fn the_rules_and_the_dashboard_name_only_exported_metrics() {
    let exported: BTreeSet<&str> = esurio::observe::metric_names().into_iter().collect();
    for h in HISTOGRAMS {
        assert!(
            exported.contains(h),
            "{h} is listed here as a histogram but the worker does not export it"
        );
    }
    let mut unknown = Vec::new();
    let mut all = BTreeSet::new();
    for (file, names) in used_names() {
        for name in names {
            if !exported.contains(name.as_str()) {
                unknown.push(format!("{file}: {name}"));
            }
            all.insert(name);
        }
    }
    assert!(
        unknown.is_empty(),
        "metrics the worker does not export:\n  {}\nexported: {exported:?}",
        unknown.join("\n  ")
    );
    assert!(all.len() >= 15, "only {all:?} found");
}

#[test]
fn the_dashboard_shows_every_exported_metric() {
    let (_, on_dashboard) = used_names()
        .into_iter()
        .find(|(file, _)| *file == DASHBOARD)
        .expect("the dashboard is read");
    let missing: Vec<&str> = esurio::observe::metric_names()
        .into_iter()
        .filter(|name| !on_dashboard.contains(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "{DASHBOARD} has no panel for {missing:?}"
    );
}
