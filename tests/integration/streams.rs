//! `invstream streams list|info|delete` against the real broker: a stream and a super stream of
//! the test's own are listed, shown with their offsets, leader, stored consumer offsets and
//! producers' last publishing ids, and deleted (a super stream with its partitions and exchange)
//! only with `--yes` when no terminal can be asked.

use serde_json::Value;

use crate::util::{
    assert_one_line_error, invstream, summary_of, unique_name, TestStream, TestSuperStream,
};

/// `invstream --json streams ARGS…`, its JSON (the run must succeed).
fn streams_json(args: &[&str]) -> Value {
    summary_of(&invstream(&[&["--json", "streams"], args].concat()))
}

/// The list's entry named `name` under `key` (`streams` or `super_streams`).
fn listed<'a>(list: &'a Value, key: &str, name: &str) -> Option<&'a Value> {
    list[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {list}"))
        .iter()
        .find(|s| s["name"] == name)
}

/// The entry named `name` in a `consumers` or `producers` array.
fn named<'a>(entries: &'a Value, name: &str) -> &'a Value {
    entries
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {entries}"))
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no '{name}' in {entries}"))
}

#[test]
fn a_stream_is_listed_shown_with_its_tracking_and_deleted_only_with_yes() {
    let stream = TestStream::new("streams-admin");
    let producer = unique_name("shop");
    let consumer = unique_name("stats");
    let produced = stream.produce_as(&producer, "1000", &[]);
    assert_eq!(produced["confirmed"], 1000, "{produced}");
    let read = stream.run_json(&[
        "consume", "--name", &consumer, "--offset", "first", "--count", "100",
    ]);
    assert_eq!(read["messages"], 100, "{read}");

    let list = streams_json(&["list"]);
    assert_eq!(list["command"], "streams list");
    assert_eq!(list["vhost"], "/");
    let entry = listed(&list, "streams", &stream.name)
        .unwrap_or_else(|| panic!("'{}' not listed", stream.name));
    assert_eq!(entry["super_stream"], Value::Null, "{entry}");
    assert!(entry["leader_node"].is_string(), "{entry}");

    let info = streams_json(&["info", &stream.name]);
    assert_eq!(info["command"], "streams info");
    assert_eq!(info["kind"], "stream");
    assert_eq!(info["first_offset"], 0, "{info}");
    assert_eq!(info["last_offset"], 999, "{info}");
    assert!(
        info["committed_chunk_id"].as_u64().unwrap() <= 999,
        "{info}"
    );
    assert_eq!(info["leader"], "localhost:5552", "{info}");
    assert_eq!(
        info["tracking_listed"], true,
        "the names a stream tracks come from the rabbitmq_stream_management plugin (scripts/broker.sh and docker-compose.yml enable it): {info}"
    );
    // Listed by the broker, not asked for.
    assert_eq!(named(&info["consumers"], &consumer)["offset"], 99, "{info}");
    assert_eq!(
        named(&info["producers"], &producer)["last_publishing_id"],
        1000,
        "{info}"
    );

    // Without the management API, the stream protocol still answers for the names given.
    let info = streams_json(&[
        "info",
        &stream.name,
        "--management-url",
        "http://127.0.0.1:1",
        "--consumer",
        &consumer,
        "--consumer",
        "never-stored",
        "--producer",
        &producer,
    ]);
    assert_eq!(info["tracking_listed"], false, "{info}");
    assert_eq!(info["messages"], Value::Null, "{info}");
    assert_eq!(info["last_offset"], 999, "{info}");
    assert!(
        info["notes"][0]
            .as_str()
            .unwrap()
            .contains("rabbitmq-plugins enable rabbitmq_management"),
        "{info}"
    );
    assert_eq!(named(&info["consumers"], &consumer)["offset"], 99, "{info}");
    assert_eq!(
        named(&info["consumers"], "never-stored")["offset"],
        Value::Null
    );
    assert_eq!(
        named(&info["producers"], &producer)["last_publishing_id"],
        1000
    );

    // No terminal (stdin is /dev/null here): no deletion without --yes.
    let refused = invstream(&["streams", "delete", &stream.name]);
    assert_one_line_error(&refused, 1, "add --yes");
    assert_eq!(streams_json(&["info", &stream.name])["last_offset"], 999);

    let deleted = streams_json(&["delete", "--yes", &stream.name]);
    assert_eq!(deleted["kind"], "stream", "{deleted}");
    assert_eq!(deleted["streams"][0], stream.name.as_str(), "{deleted}");
    assert!(listed(&streams_json(&["list"]), "streams", &stream.name).is_none());
    let again = invstream(&["streams", "delete", "--yes", &stream.name]);
    assert_one_line_error(&again, 1, "no stream or super stream named");
}

#[test]
fn a_super_stream_is_listed_with_its_partitions_and_deleted_with_its_exchange() {
    let super_stream = TestSuperStream::new("streams-admin");
    let name = super_stream.name().to_string();
    let producer = unique_name("shop");
    let produced = summary_of(&super_stream.run(&[
        "produce",
        "--count",
        "1000",
        "--partitions",
        "3",
        "--producer-name",
        &producer,
    ]));
    assert_eq!(produced["confirmed"], 1000, "{produced}");
    let partitions: Vec<String> = (0..3).map(|i| super_stream.partition(i)).collect();

    let list = streams_json(&["list"]);
    let entry = listed(&list, "super_streams", &name)
        .unwrap_or_else(|| panic!("super stream '{name}' not listed"));
    let listed_partitions: Vec<&str> = entry["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["stream"].as_str().unwrap())
        .collect();
    assert_eq!(listed_partitions, partitions, "{entry}");
    assert_eq!(entry["partitions"][2]["binding_key"], "2", "{entry}");
    for partition in &partitions {
        let p = listed(&list, "streams", partition).expect("each partition is a stream");
        assert_eq!(p["super_stream"], name.as_str(), "{p}");
    }

    let info = streams_json(&["info", &name, "--producer", &producer]);
    assert_eq!(info["kind"], "super_stream", "{info}");
    let shown = info["partitions"].as_array().unwrap();
    assert_eq!(shown.len(), 3, "{info}");
    let (mut messages, mut last_ids) = (0, Vec::new());
    for (i, p) in shown.iter().enumerate() {
        assert_eq!(p["stream"], partitions[i].as_str(), "{info}");
        assert_eq!(p["binding_key"], i.to_string(), "{info}");
        assert_eq!(p["leader"], "localhost:5552", "{info}");
        assert_eq!(p["first_offset"], 0, "{info}");
        let last = p["last_offset"]
            .as_u64()
            .expect("every partition got updates");
        messages += last + 1;
        // Each partition's producer (the run's name on every partition) sends the updates
        // routed there under their run-wide publishing ids (seq + 1).
        let id = named(&p["producers"], &producer)["last_publishing_id"]
            .as_u64()
            .unwrap();
        assert!(id > last, "{info}");
        last_ids.push(id);
    }
    assert_eq!(messages, 1000, "{info}");
    assert_eq!(last_ids.iter().max(), Some(&1000), "{info}");

    let refused = invstream(&["streams", "delete", &name]);
    assert_one_line_error(&refused, 1, "add --yes");

    let deleted = streams_json(&["delete", "--yes", &name]);
    assert_eq!(deleted["kind"], "super_stream", "{deleted}");
    assert_eq!(deleted["exchange"], name.as_str(), "{deleted}");
    assert_eq!(deleted["streams"].as_array().unwrap().len(), 3, "{deleted}");
    let list = streams_json(&["list"]);
    assert!(
        listed(&list, "super_streams", &name).is_none(),
        "the exchange is gone"
    );
    for partition in &partitions {
        assert!(listed(&list, "streams", partition).is_none(), "{partition}");
    }
    let again = invstream(&["streams", "delete", "--yes", &name]);
    assert_one_line_error(&again, 1, "no stream or super stream named");
}

#[test]
fn list_without_the_management_api_says_how_to_get_it() {
    crate::util::require_broker(crate::util::BROKER_PORT);
    let output = invstream(&["streams", "list", "--management-url", "http://127.0.0.1:1"]);
    assert_one_line_error(&output, 1, "rabbitmq-plugins enable rabbitmq_management");
    assert_one_line_error(&output, 1, "--management-url");
}

#[test]
fn info_of_a_name_that_is_nothing_says_so() {
    crate::util::require_broker(crate::util::BROKER_PORT);
    let name = unique_name("nothing");
    let output = invstream(&["streams", "info", &name]);
    assert_one_line_error(
        &output,
        1,
        &format!("there is no stream or super stream named '{name}'"),
    );
}
