//! What `invstream serve` shows at `/metrics` for people to graph (issue 27): every answer by
//! route, method and status and how long it took, and the Grafana dashboard in
//! docs/grafana/invstream-serve.json, whose every metric a real gateway serves.

use std::collections::{BTreeSet, HashMap};

use crate::serve_util::{metric_values, start, stop, UPDATE};
use crate::util::{runtime, TestStream};

const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/docs/grafana/invstream-serve.json"
);

fn dashboard() -> serde_json::Value {
    let text = std::fs::read_to_string(DASHBOARD).expect("the dashboard is in docs/grafana");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every PromQL expression of the dashboard: the panels' `expr` and the variables' queries.
fn expressions(value: &serde_json::Value, found: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr" | "definition" | "query", serde_json::Value::String(expr)) => {
                        found.push(expr.clone())
                    }
                    _ => expressions(value, found),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| expressions(item, found)),
        _ => {}
    }
}

/// The metric names in a PromQL expression: its identifiers outside quotes that start with
/// `invstream_` or `process_` (functions, label names and label values do not). As Prometheus
/// stores them: a counter's `_total`, a histogram's `_bucket`, `_sum`, `_count`, an info
/// metric's `_info` are part of the name.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let unquoted: String = expr
        .split('"')
        .step_by(2) // the pieces between quotes are label values
        .collect::<Vec<_>>()
        .join(" ");
    unquoted
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("invstream_") || word.starts_with("process_"))
        .map(str::to_string)
        .collect()
}

/// The series names a scrape holds (the part of each sample line before its labels).
fn series_names(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_metric_names_of_an_expression_are_found() {
    let expr = r#"histogram_quantile(0.99, sum by (le, route) (rate(invstream_http_request_duration_seconds_bucket{instance=~"$instance",route!="invstream_not_a_metric"}[5m]))) / time() - process_start_time_seconds"#;
    assert_eq!(
        metric_names(expr),
        BTreeSet::from([
            "invstream_http_request_duration_seconds_bucket".to_string(),
            "process_start_time_seconds".to_string(),
        ])
    );
    let scrape = "# TYPE invstream_x counter\ninvstream_x_total 3\ninvstream_h_bucket{le=\"+Inf\"} 1\n# EOF\n";
    assert_eq!(
        series_names(scrape),
        BTreeSet::from([
            "invstream_x_total".to_string(),
            "invstream_h_bucket".to_string()
        ])
    );
}

#[test]
fn the_dashboard_is_importable_and_graphs_what_the_issue_asks_for() {
    let dashboard = dashboard();
    assert_eq!(dashboard["__inputs"][0]["name"], "DS_PROMETHEUS");
    assert_eq!(dashboard["__inputs"][0]["pluginId"], "prometheus");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "one id per panel"
        );
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${DS_PROMETHEUS}", "{panel}");
        let targets = panel["targets"].as_array().expect("a panel's queries");
        assert!(!targets.is_empty(), "{panel}");
        for target in targets {
            assert_eq!(target["datasource"]["uid"], "${DS_PROMETHEUS}", "{target}");
            assert!(
                !metric_names(target["expr"].as_str().unwrap()).is_empty(),
                "{target}"
            );
        }
    }
    let mut exprs = Vec::new();
    expressions(&dashboard, &mut exprs);
    let named: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    for wanted in [
        "invstream_http_requests_total",
        "invstream_http_request_duration_seconds_bucket",
        "invstream_confirm_latency_seconds_bucket",
        "invstream_published_total",
        "invstream_confirmed_total",
        "invstream_failed_total",
        "invstream_in_flight",
        "invstream_queued",
        "invstream_http_connections_open",
        "invstream_http_connections_refused_total",
        "invstream_reconnects_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "invstream_build_info",
    ] {
        assert!(
            named.contains(wanted),
            "the dashboard graphs {wanted}: {named:?}"
        );
    }
}

#[test]
fn every_metric_the_dashboard_names_is_served() {
    let stream = TestStream::new("serve-dashboard");
    let (child, base) = start(&stream, &[]);
    let scrape = runtime().block_on(async {
        let client = reqwest::Client::new();
        let updates = format!("{base}/updates");
        for body in [UPDATE, "not json"] {
            client.post(&updates).body(body).send().await.unwrap();
        }
        client.get(format!("{base}/nowhere")).send().await.unwrap();
        let response = client.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        response.text().await.unwrap()
    });
    stop(child);
    let served = series_names(&scrape);
    let mut exprs = Vec::new();
    expressions(&dashboard(), &mut exprs);
    let named: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    assert!(named.len() >= 20, "{named:?}");
    let missing: Vec<&String> = named.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "the dashboard names metrics /metrics does not serve: {missing:?}\n{scrape}"
    );
}

#[test]
fn answers_are_counted_by_route_method_and_status_and_timed() {
    const TOKEN: &str = "metrics-token-0123456789abcdef";
    let stream = TestStream::new("serve-http-metrics");
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{TOKEN}\n")).unwrap();
    let (child, base) = start(&stream, &["--auth-token-file", tokens.to_str().unwrap()]);
    let (first, second) = runtime().block_on(async {
        let client = reqwest::Client::new();
        let updates = format!("{base}/updates");
        let mut statuses = Vec::new();
        for _ in 0..3 {
            let sent = client.post(&updates).bearer_auth(TOKEN).body(UPDATE);
            statuses.push(sent.send().await.unwrap().status().as_u16());
        }
        let unauthorized = client.post(&updates).body(UPDATE);
        statuses.push(unauthorized.send().await.unwrap().status().as_u16());
        let blank = client.post(&updates).bearer_auth(TOKEN).body("   ");
        statuses.push(blank.send().await.unwrap().status().as_u16());
        let nowhere = client.get(format!("{base}/nowhere")).bearer_auth(TOKEN);
        statuses.push(nowhere.send().await.unwrap().status().as_u16());
        assert_eq!(statuses, [202, 202, 202, 401, 400, 404]);
        let scrape = client.get(format!("{base}/metrics")).bearer_auth(TOKEN);
        let first = scrape.try_clone().unwrap().send().await.unwrap();
        let first = first.text().await.unwrap();
        let second = scrape.send().await.unwrap().text().await.unwrap();
        (first, second)
    });
    stop(child);

    let values = metric_values(&first);
    let series = |prefix: &str| -> HashMap<&str, f64> {
        values
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(name, value)| (name.as_str(), *value))
            .collect()
    };
    let requests = series("invstream_http_requests_total{");
    let expected = HashMap::from([
        (
            r#"invstream_http_requests_total{route="/updates",method="POST",status="202"}"#,
            3.0,
        ),
        (
            r#"invstream_http_requests_total{route="/updates",method="POST",status="401"}"#,
            1.0,
        ),
        (
            r#"invstream_http_requests_total{route="/updates",method="POST",status="400"}"#,
            1.0,
        ),
        (
            r#"invstream_http_requests_total{route="other",method="GET",status="404"}"#,
            1.0,
        ),
    ]);
    // The scrape itself is counted once answered, so only in the next one.
    assert_eq!(requests, expected, "{first}");
    let counts = series("invstream_http_request_duration_seconds_count{");
    let expected = HashMap::from([
        (
            r#"invstream_http_request_duration_seconds_count{route="/updates"}"#,
            5.0,
        ),
        (
            r#"invstream_http_request_duration_seconds_count{route="other"}"#,
            1.0,
        ),
    ]);
    assert_eq!(counts, expected, "{first}");
    assert_eq!(
        values[r#"invstream_http_request_duration_seconds_bucket{le="+Inf",route="/updates"}"#],
        5.0,
        "{first}"
    );
    assert!(values[r#"invstream_http_request_duration_seconds_sum{route="/updates"}"#] > 0.0);
    assert_eq!(values["invstream_http_unauthorized_total"], 1.0, "{first}");
    assert_eq!(values["invstream_confirmed_total"], 3.0, "{first}");

    let values = metric_values(&second);
    assert_eq!(
        values[r#"invstream_http_requests_total{route="/metrics",method="GET",status="200"}"#], 1.0,
        "{second}"
    );
    assert_eq!(
        values[r#"invstream_http_request_duration_seconds_count{route="/metrics"}"#], 1.0,
        "{second}"
    );
}
