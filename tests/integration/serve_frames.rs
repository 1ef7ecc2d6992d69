//! `invstream serve` shares publish frames between concurrent requests: requests that arrive
//! while the publisher is busy wait in one queue and go out together, each still answered only
//! once its own updates are confirmed, each update stored once.

use std::time::{Duration, Instant};

use crate::serve_util::{metrics, printed_seqs, start_through, stop};
use crate::util::{runtime, BrokerNode};

const REQUESTS: u64 = 200;

/// The broker goes away and comes back: while the gateway reconnects (holding its publisher),
/// 200 concurrent one-update requests queue; once it is back they go out in a few shared
/// frames, every request is answered 202, and the stream holds each update exactly once.
#[test]
fn concurrent_requests_share_publish_frames_and_each_is_stored_once() {
    let node = BrokerNode::start("inv-serve-frames", 5592, None);
    let stream = node.stream("serve-frames");
    let uri = node.uri();
    let (child, base) = start_through(&node, &stream, "180s", "180s");
    let rt = runtime();
    let client = reqwest::Client::new();
    let before = rt.block_on(metrics(&client, &base));
    assert_eq!(before["invstream_publish_frames_total"], 0.0, "{before:?}");

    node.act("node-stop");
    let (answers, _node) = rt.block_on(async {
        let requests: Vec<_> = (0..REQUESTS)
            .map(|seq| {
                let (client, url) = (client.clone(), format!("{base}/updates"));
                let body = format!(
                    r#"{{"seq":{seq},"product_id":{seq},"sku":"SKU-{seq}","warehouse":"AMS-1","event":"sold","quantity_delta":-1,"stock_level":3}}"#
                );
                tokio::spawn(async move {
                    let response = client.post(url).body(body).send().await.unwrap();
                    let status = response.status().as_u16();
                    (status, response.text().await.unwrap_or_default())
                })
            })
            .collect();
        // Every request is in the gateway, waiting for the publisher, before the broker is back.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let values = metrics(&client, &base).await;
            if values["invstream_queued"] == REQUESTS as f64 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the requests never all queued: {values:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let node = tokio::task::spawn_blocking(move || {
            node.act("node-start");
            node
        })
        .await
        .unwrap();
        let mut answers = Vec::new();
        for request in requests {
            answers.push(
                tokio::time::timeout(Duration::from_secs(180), request)
                    .await
                    .expect("every request is answered")
                    .unwrap(),
            );
        }
        (answers, node)
    });
    for (status, body) in &answers {
        assert_eq!(*status, 202, "{body}");
    }
    let after = rt.block_on(metrics(&client, &base));
    let frames = after["invstream_publish_frames_total"];
    assert!(
        (1.0..=10.0).contains(&frames),
        "{REQUESTS} queued one-update requests went out in {frames} frames: {after:?}"
    );
    assert_eq!(after["invstream_confirmed_total"], REQUESTS as f64);
    assert_eq!(after["invstream_queued"], 0.0);

    let summary = stop(child);
    assert_eq!(summary["confirmed"], REQUESTS, "{summary}");

    let mut stored =
        printed_seqs(&stream.run(&["--uri", &uri, "consume", "--offset", "first", "--print"]));
    stored.sort_unstable();
    assert_eq!(stored, (0..REQUESTS).collect::<Vec<u64>>(), "each once");
}
