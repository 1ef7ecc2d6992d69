//! `bench --workload`: each topic's figures and their totals, or one JSON object.

use super::ms;
use super::streams::table;
use super::{rate_text as msg_rate, thousands};
use crate::stats::CommandDetails;
use crate::workload::WorkloadOutcome;

pub fn json(outcome: &WorkloadOutcome) -> serde_json::Result<String> {
    super::json_line(outcome)
}

pub fn text(outcome: &WorkloadOutcome) -> String {
    let mut text = format!(
        "workload '{}' ({}): {} topic(s) × {} partition(s), {} producer(s) and {} consumer(s){} per topic, {}{}\n\n",
        outcome.workload,
        outcome.file,
        outcome.topics,
        outcome.partitions_per_topic,
        outcome.producers_per_topic,
        outcome.consumers_per_topic,
        match outcome.consumers_per_subscription {
            1 => String::new(),
            each => format!(" in groups of {each}"),
        },
        match outcome.message_size {
            Some(size) => format!("{size}-byte messages"),
            None => "inventory updates (~180 bytes)".into(),
        },
        match outcome.interrupted {
            true => " (stopped early)",
            false => "",
        }
    );
    let mut rows = vec![[
        "stream",
        "published",
        "publish rate",
        "consumed",
        "consume rate",
        "confirm p50",
        "confirm p99",
        "end-to-end p99",
    ]
    .map(String::from)
    .to_vec()];
    for topic in &outcome.per_topic {
        let (consumed, consumed_per_s, end_to_end_p99) = match &topic.details {
            CommandDetails::Bench {
                consumed,
                consumed_per_s,
                end_to_end_us,
                ..
            } => (*consumed, *consumed_per_s, end_to_end_us.p99),
            _ => (0, 0.0, 0),
        };
        rows.push(vec![
            topic.stream.clone(),
            thousands(topic.messages),
            msg_rate(topic.msg_per_s),
            thousands(consumed),
            msg_rate(consumed_per_s),
            ms(topic.latency_us.p50),
            ms(topic.latency_us.p99),
            ms(end_to_end_p99),
        ]);
    }
    rows.push(vec![
        "all topics".into(),
        thousands(outcome.published),
        msg_rate(outcome.publish_msg_per_s),
        thousands(outcome.consumed),
        msg_rate(outcome.consume_msg_per_s),
        ms(outcome.confirm_latency_us.p50),
        ms(outcome.confirm_latency_us.p99),
        ms(outcome.end_to_end_latency_us.p99),
    ]);
    text.push_str(&table(&rows, &[1, 2, 3, 4, 5, 6, 7]));
    for topic in &outcome.per_topic {
        if let CommandDetails::Bench {
            backlog: Some(backlog),
            ..
        } = &topic.details
        {
            text.push_str(&format!(
                "\nbacklog of {}: {}\n",
                topic.stream,
                super::backlog_text(backlog)
            ));
        }
    }
    if outcome.failed > 0 {
        text.push_str(&format!(
            "\n{} update(s) not confirmed\n",
            thousands(outcome.failed)
        ));
    }
    text
}
