#!/usr/bin/env python3
"""The checker of scripts/chaos-run.sh: what a fault schedule did to the updates.

  chaos-check.py digest < LOG.ndjson > DIGEST.json
      Reads a stream back as `invstream consume --offset first --print` writes it (one update a
      line) and sums it up: messages, distinct seqs, duplicates, seqs missing below the highest,
      updates out of order within their product, and how many were published in each second
      (by the update's produced_at). Streaming: a long run's log is never held in memory.

  chaos-check.py arrivals < LIVE.ndjson > ARRIVALS.json
      The digest of what a live reader (`consume --follow --print`, which flushes each line)
      printed, with how many lines arrived in each second of the clock (`read_per_second`):
      the timeline's consume rate, and the reader's own reading checked update by update.

  chaos-check.py selftest
      Shows each count catching what it claims, on made-up logs (exit 1 if one does not).

  chaos-check.py report DIR [--json]
      Puts a run's files together (run.json, faults.jsonl, the produce and consume summaries, the
      digests): per stream, confirmed updates lost, duplicated, reordered and unconfirmed ones
      present; per consumer, what it read against the log; per fault type, the longest stall
      (time without a confirm) and the time to recover after the heal. Prints a table (or the
      JSON with --json), writes DIR/summary.json and DIR/timeline.svg, and exits 1 when a
      confirmed update was lost, duplicated or reordered, a consumer's reading does not add up,
      or a stall went past its bound.

Only the Python standard library.
"""

import json
import sys
import time
from collections import defaultdict
from pathlib import Path

# A node that stops answering is declared down net_ticktime (10 s on the chaos cluster) to ~20 s
# later; a new leader is elected then (docs/investigations/hung-leader.md).
DETECTION_S = 20.0
# What invstream may add to that: its watchdog asks after 5 s without a confirm, every second.
MOVE_S = 10.0
# A stall while no fault is in effect (a busy machine) may last this long.
QUIET_BOUND_S = 10.0
# A stall belongs to a fault that began before it ended and was healthy again less than this
# long before it began.
SETTLE_S = 5.0
FIRST_MISSING_LISTED = 10
# The timeline's rates are averaged over this many seconds.
BIN_S = 6


def digest(lines):
    """The sums of one stream's log, from `consume --print` lines."""
    seen = bytearray()
    extra = set()  # seqs too far above the dense range (not expected; kept exact anyway)
    messages = duplicates = reordered = other = 0
    last_by_product = {}
    per_second = defaultdict(int)
    max_seq = -1

    def has(seq):
        return seq < len(seen) * 8 and seen[seq >> 3] & (1 << (seq & 7)) or seq in extra

    def add(seq):
        if seq < 64 * 1024 * 1024 * 8:
            need = (seq >> 3) + 1
            if need > len(seen):
                seen.extend(bytes(max(need - len(seen), len(seen))))
            seen[seq >> 3] |= 1 << (seq & 7)
        else:
            extra.add(seq)

    for line in lines:
        line = line.strip()
        if not line:
            continue
        record = json.loads(line)
        update = record.get("update")
        if update is None:
            other += 1
            continue
        messages += 1
        seq, product = update["seq"], update["product_id"]
        per_second[update["produced_at_us"] // 1_000_000] += 1
        if has(seq):
            duplicates += 1
            continue
        add(seq)
        max_seq = max(max_seq, seq)
        last = last_by_product.get(product)
        if last is not None and seq < last:
            reordered += 1
        else:
            last_by_product[product] = seq
    missing = [seq for seq in range(max_seq + 1) if not has(seq)]
    return {
        "messages": messages,
        "distinct": messages - duplicates,
        "duplicates": duplicates,
        "reordered": reordered,
        "not_updates": other,
        "max_seq": max_seq,
        "missing_below_max": len(missing),
        "first_missing": missing[:FIRST_MISSING_LISTED],
        "per_second": {str(second): count for second, count in sorted(per_second.items())},
    }


def arrivals(lines):
    """`digest` of a live reader's lines, with when each arrived (per second of the clock)."""
    per_second = defaultdict(int)

    def stamped():
        for line in lines:
            per_second[int(time.time())] += 1
            yield line

    result = digest(stamped())
    result["read_per_second"] = {str(second): count
                                 for second, count in sorted(per_second.items())}
    return result


def last_json(text):
    """The last JSON object of a process's stderr (its `--json` summary with `--print`, after
    its status and log lines): the last line that starts with `{` and parses."""
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            try:
                return json.JSONDecoder().raw_decode(line)[0]
            except ValueError:
                continue
    return None


def load(path, default=None):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default


def fault_windows(faults_log):
    """Each fault of the nemesis log: its type, node, and when it began, was healed and healthy."""
    windows, current = [], None
    for line in faults_log:
        event = json.loads(line)
        kind = event.get("event")
        if kind == "fault":
            # `t0`: when injecting began (a rolling restart takes a while); `t`: in effect.
            current = {"fault": event["fault"], "node": event.get("node"),
                       "start": event.get("t0", event["t"]), "heal": None, "healthy": None}
            windows.append(current)
        elif kind == "heal" and current:
            current["heal"] = event["t"]
        elif kind == "healthy" and current:
            current["healthy"] = event["t"]
            current = None
    for window in windows:
        window["heal"] = window["heal"] or window["start"]
        window["healthy"] = window["healthy"] or window["heal"]
    return windows


def stall_bound(window):
    """How long a stall a fault may cause: the cluster's detection (or the fault, if shorter:
    nothing can move before the cluster notices) plus invstream's move."""
    held = window["heal"] - window["start"]
    return min(held, DETECTION_S) + MOVE_S


def check_stream(name, produced, log):
    """Lost, duplicated, reordered and unconfirmed-present updates of one stream."""
    sent = produced.get("messages", 0)
    confirmed = produced.get("confirmed", 0)
    failed = produced.get("failed", 0)
    # Seqs 0..sent-1 were published (a fresh producer name). With every one confirmed, each
    # absent one is lost; with some unconfirmed (which, is not known), at least the shortfall.
    absent = log["missing_below_max"] + max(0, sent - 1 - log["max_seq"])
    lost = absent if failed == 0 else max(0, confirmed - log["distinct"])
    return {
        "stream": name,
        "producer": produced.get("producer"),
        "sent": sent,
        "confirmed": confirmed,
        "unconfirmed": failed,
        "stored": log["messages"],
        "lost": lost,
        "duplicates": log["duplicates"],
        "reordered": log["reordered"],
        "unconfirmed_present": max(0, log["distinct"] - confirmed) if failed else 0,
        "first_missing": log["first_missing"],
        "max_stall_s": produced.get("max_stall_s"),
        "reconnects": produced.get("reconnects"),
    }


def verify_ok(summary):
    return bool(summary) and (summary.get("verify") or {}).get("ok", False)


def producers(summary):
    return {p["producer"]: p for p in ((summary or {}).get("verify") or {}).get("producers", [])}


def tail_gaps_only(live, rest):
    """Whether a live read and its catch-up fail their --verify only by where one stopped and
    the other began, as a super stream's reading does: its partitions stop at different points
    (a SIGINT), so the live read misses seqs the catch-up reads, and the catch-up misses the
    seqs among them that the live read had. No duplicate or reordered update in either; each gap
    of the live read at or after the catch-up's first seq; as many gaps in each as the other
    read there (the totals against the log are checked apart)."""
    if rest is None:
        return False
    live_p, rest_p = producers(live), producers(rest)
    for p in list(live_p.values()) + list(rest_p.values()):
        if p["duplicates"] or p.get("reordered", 0):
            return False
    for name, l in live_p.items():
        if not l["gaps"]:
            continue
        r = rest_p.get(name)
        if r is None or any(gap < r["first_seq"] for gap in l["first_gaps"]):
            return False
        if l["gaps"] != r["distinct"] - max(0, r["last_seq"] - l["last_seq"]):
            return False
    return True


def resume_problems(live, rest):
    """Where the catch-up read began against where the live read ended: right after it. On a
    super stream, offsets are per partition, so each partition is compared with itself (the
    summaries' `partitions`)."""
    def ends(summary):
        parts = summary.get("partitions") or [summary]
        return {p.get("stream", ""): p for p in parts}
    live_parts, rest_parts = ends(live), ends(rest)
    problems = []
    for stream, r in rest_parts.items():
        last, first = live_parts.get(stream, {}).get("last_offset"), r.get("first_offset")
        if first is not None and last is not None and first != last + 1:
            where = f" of {stream}" if live.get("partitions") else ""
            problems.append(f"resumed at offset {first}{where}, not {last + 1}")
    return problems


def check_consumer(name, live, rest, log_messages, arrived=None):
    """A consumer's reading against the log: what it read live during the faults plus what it
    read after them from its stored offset (`rest`, for a named one) must be the log, exactly.
    `arrived`: the digest of what it printed, where it printed (each update once, none left out
    below the highest, as many as its summary says)."""
    problems = []
    if arrived is not None:
        if arrived["duplicates"] or arrived["missing_below_max"]:
            problems.append(f"printed {arrived['duplicates']} duplicates, "
                            f"{arrived['missing_below_max']} gaps")
        if live and arrived["messages"] != live.get("messages"):
            problems.append(f"printed {arrived['messages']}, its summary says "
                            f"{live.get('messages')}")
    read = (live or {}).get("messages", 0)
    if not live:
        problems.append("no summary (did it fail?)")
    elif not verify_ok(live) and not tail_gaps_only(live, rest):
        problems.append("its own --verify failed")
    if rest is not None:
        read += rest.get("messages", 0)
        if not verify_ok(rest) and rest.get("messages", 0) and not tail_gaps_only(live, rest):
            problems.append("the catch-up read's --verify failed")
        problems += resume_problems(live or {}, rest)
        if read != log_messages:
            problems.append(f"read {read} in all, the log holds {log_messages}")
    elif live:
        # Read live and stopped: a prefix of the log, each update once (its --verify: no gap,
        # no duplicate, from seq 0). Offsets are no measure: offset tracking takes some too.
        seqs = sum(p["distinct"] for p in live.get("verify", {}).get("producers", []))
        if read == 0:
            problems.append("read nothing")
        elif read > log_messages:
            problems.append(f"read {read}, more than the log's {log_messages}")
        elif seqs != read:
            problems.append(f"read {read} messages but {seqs} distinct updates")
    return {"consumer": name, "read": read, "reconnects": (live or {}).get("reconnects"),
            "ok": not problems, "problems": problems}


def stalls_by_fault(windows, stalls):
    """Each stall (from the produce summaries) matched to the fault it overlaps; per fault type,
    the longest stall, its bound, and the longest time from a heal to the first confirm."""
    rows = {}
    for window in windows:
        row = rows.setdefault(window["fault"], {"fault": window["fault"], "injected": 0,
                                                "longest_stall_s": 0.0, "bound_s": 0.0,
                                                "recover_after_heal_s": 0.0})
        row["injected"] += 1
        row["bound_s"] = max(row["bound_s"], stall_bound(window))
    quiet = {"fault": "none", "injected": 0, "longest_stall_s": 0.0, "bound_s": QUIET_BOUND_S,
             "recover_after_heal_s": 0.0}
    over = []
    for stall in stalls:
        start, end = stall["started_unix_s"], stall["started_unix_s"] + stall["seconds"]
        # The fault in effect when the stall began (the latest begun by then), else one that
        # began while it lasted.
        began = [w for w in windows
                 if w["start"] <= start + 1 and start <= w["healthy"] + SETTLE_S]
        during = [w for w in windows if start <= w["start"] <= end]
        window = max(began, key=lambda w: w["start"]) if began else (during or [None])[0]
        row = rows[window["fault"]] if window else quiet
        row["longest_stall_s"] = max(row["longest_stall_s"], stall["seconds"])
        bound = stall_bound(window) if window else QUIET_BOUND_S
        if stall["seconds"] > bound:
            over.append({**stall, "fault": row["fault"], "bound_s": bound})
        if window and start <= window["heal"] <= end:
            row["recover_after_heal_s"] = max(row["recover_after_heal_s"], end - window["heal"])
    table = list(rows.values()) + ([quiet] if quiet["longest_stall_s"] else [])
    for row in table:
        for key in ("longest_stall_s", "bound_s", "recover_after_heal_s"):
            row[key] = round(row[key], 2)
    return table, over


COLOURS = {"kill": "#d62728", "stop": "#ff7f0e", "pause-short": "#bcbd22", "pause-long": "#8c564b",
           "isolate": "#9467bd", "isolate-peers": "#e377c2", "leader-move": "#17becf",
           "rolling-restart": "#7f7f7f", "disk-alarm": "#2ca02c", "conn-cut": "#1f77b4"}


def timeline_svg(series, windows, start, end):
    """Updates stored, per second of their publish time (produced_at), per stream, and read by
    the live replica reader, per second of their arrival (dashed); the faults shaded.
    Publishing goes on into a stall as long as the in-flight bound allows (what the stall holds
    is re-sent), so a stall shows in the stored rate only once that bound is full; the stalls
    themselves are in the table."""
    width, height, left, right, top, bottom = 1000, 360, 70, 20, 30, 70
    span = max(end - start, 1.0)
    # Per BIN_S seconds of the run (updates are stamped per generated batch, one a second to
    # the stream and one each 2 s to the super stream: 6 s holds whole batches of both), 0 where
    # nothing was published: a stall shows as a drop.
    bins = range(int(start), int(end) + 1, BIN_S)
    series = {name: {first: sum(counts.get(str(second), 0)
                                for second in range(first, first + BIN_S)) / BIN_S
                     for first in bins}
              for name, counts in series.items()}
    # Scaled to the usual rate, not to the catch-up bursts after a stall (drawn clipped).
    usual = sorted(count for counts in series.values() for count in counts.values() if count)
    peak = max(2.5 * usual[len(usual) // 2] if usual else 1, 1)
    x = lambda t: left + (t - start) / span * (width - left - right)
    y = lambda v: top + (1 - v / peak) * (height - top - bottom)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="18" font-size="13">updates per second: stored (by publish time) and '
           f'read live (by arrival, dashed); {BIN_S} s means, bursts clipped; shaded: a fault, '
           f'from injection to heal</text>']
    for w in windows:
        x0, x1 = x(w["start"]), max(x(w["heal"]), x(w["start"]) + 2)
        colour = COLOURS.get(w["fault"], "#aaaaaa")
        out.append(f'<rect x="{x0:.1f}" y="{top}" width="{x1 - x0:.1f}" '
                   f'height="{height - top - bottom}" fill="{colour}" fill-opacity="0.25"/>')
        out.append(f'<text x="{x0 + 2:.1f}" y="{top + 12}" fill="{colour}" '
                   f'transform="rotate(90 {x0 + 2:.1f} {top + 12})">{w["fault"]}</text>')
    for v in (0, peak / 2, peak):
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                   f'stroke="#ddd"/><text x="{left - 6}" y="{y(v) + 4:.1f}" '
                   f'text-anchor="end">{int(v):,}</text>')
    step = max(10, int(span / 10 // 10 * 10) or 10)
    for s in range(0, int(span) + 1, step):
        out.append(f'<text x="{x(start + s):.1f}" y="{height - bottom + 16}" '
                   f'text-anchor="middle">{s}s</text>')
    styles = ["#1f3b73", "#c0392b", "#2e8b57"]
    for index, (name, counts) in enumerate(series.items()):
        points = " ".join(f"{x(second + BIN_S / 2):.1f},{y(min(count, peak)):.1f}"
                          for second, count in sorted(counts.items()))
        colour = styles[index % len(styles)]
        dash = ' stroke-dasharray="5,3"' if name.startswith("read ") else ""
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5"{dash} '
                   f'points="{points}"/>')
        out.append(f'<text x="{left + 310 * index}" y="{height - 20}" fill="{colour}">'
                   f'— {name}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def report(directory, as_json):
    d = Path(directory)
    run = load(d / "run.json", {})
    windows = fault_windows((d / "faults.jsonl").read_text().splitlines()
                            if (d / "faults.jsonl").exists() else [])
    streams, stalls, series = [], [], {}
    for kind in ("stream", "super"):
        produced, log = load(d / f"produce-{kind}.json"), load(d / f"log-{kind}.digest.json")
        if produced is None or log is None:
            continue
        name = run.get("super_stream" if kind == "super" else "stream", kind)
        streams.append(check_stream(name, produced, log))
        stalls.extend(produced.get("stalls", []))
        series[name] = log["per_second"]
    logs = {kind: (load(d / f"log-{kind}.digest.json") or {}).get("messages", 0)
            for kind in ("stream", "super")}
    consumers = []
    for name, kind, rest in (("named, from the leader", "stream", "consume-named-rest.json"),
                             ("from a replica", "stream", None),
                             ("single active, super stream", "super", "consume-sac-rest.json")):
        file = {"named, from the leader": "consume-named.json", "from a replica":
                "consume-replica.json", "single active, super stream": "consume-sac.json"}[name]
        if not any((d / f).exists() for f in (file, file.replace(".json", ".log"))) \
                and not (rest and (d / rest).exists()):
            continue
        # The replica reader prints what it reads (for the timeline's consume rate): its
        # summary then ends its stderr.
        live = load(d / file)
        if live is None and (d / file.replace(".json", ".log")).exists():
            live = last_json((d / file.replace(".json", ".log")).read_text(errors="replace"))
        arrived = load(d / file.replace(".json", ".arrivals.json"))
        if arrived:
            series[f"read from a replica ({run.get('stream', 'stream')})"] = \
                arrived["read_per_second"]
        consumers.append(check_consumer(name, live, load(d / rest, {}) if rest else None,
                                        logs[kind], arrived))
    faults, over = stalls_by_fault(windows, sorted(stalls, key=lambda s: s["started_unix_s"]))
    totals = {key: sum(s[key] for s in streams)
              for key in ("confirmed", "lost", "duplicates", "reordered", "unconfirmed_present")}
    ok = (totals["lost"] == 0 and totals["duplicates"] == 0 and totals["reordered"] == 0
          and all(c["ok"] for c in consumers) and not over and bool(streams))
    summary = {"ok": ok, "seed": run.get("seed"), "command": run.get("command"),
               "faults": faults, **totals, "streams": streams, "consumers": consumers,
               "stalls_over_bound": over}
    (d / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if series:
        seconds = [float(second) for counts in series.values() for second in counts]
        start = float(run.get("started") or min(seconds))
        end = float(run.get("ended") or max(seconds) + 1)
        (d / "timeline.svg").write_text(timeline_svg(series, windows, start, end))
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        print(render(summary))
    return 0 if ok else 1


def render(s):
    lines = [f"chaos run (seed {s['seed']}): {'OK' if s['ok'] else 'FAILED'}", ""]
    lines.append(f"  {'stream':<34} {'confirmed':>10} {'lost':>5} {'dup':>5} {'reord':>6} "
                 f"{'unconf.':>8} {'present':>8} {'stall s':>8} {'reconn':>6}")
    for r in s["streams"]:
        lines.append(f"  {r['stream']:<34} {r['confirmed']:>10,} {r['lost']:>5} "
                     f"{r['duplicates']:>5} {r['reordered']:>6} {r['unconfirmed']:>8} "
                     f"{r['unconfirmed_present']:>8} {r['max_stall_s'] or 0:>8.2f} "
                     f"{r['reconnects'] or 0:>6}")
    lines += ["", f"  {'fault':<16} {'injected':>8} {'longest stall s':>16} {'bound s':>8} "
                  f"{'recovered after heal s':>23}"]
    for f in s["faults"]:
        lines.append(f"  {f['fault']:<16} {f['injected']:>8} {f['longest_stall_s']:>16.2f} "
                     f"{f['bound_s']:>8.1f} {f['recover_after_heal_s']:>23.2f}")
    lines.append("")
    for c in s["consumers"]:
        verdict = "exact" if c["ok"] else "; ".join(c["problems"])
        lines.append(f"  consumer {c['consumer']}: read {c['read']:,} ({verdict})")
    for o in s["stalls_over_bound"]:
        lines.append(f"  stall of {o['seconds']:.1f}s at {o['started_unix_s']:.1f} during "
                     f"{o['fault']}: over its bound of {o['bound_s']:.1f}s")
    return "\n".join(lines)


def selftest():
    """Each count shown to catch what it claims, on made-up logs: a complete one passes; one
    update removed is lost; one stored twice is a duplicate; two swapped are reordered."""
    def line(seq, product):
        update = {"seq": seq, "product_id": product, "produced_at_us": 1_000_000 * (seq // 10)}
        return json.dumps({"offset": seq, "update": update})

    def checked(seqs):
        log = digest(line(seq, seq % 7) for seq in seqs)
        produced = {"messages": 100, "confirmed": 100, "failed": 0}
        return check_stream("s", produced, log)

    whole = list(range(100))
    cases = {
        "complete": (whole, {"lost": 0, "duplicates": 0, "reordered": 0}),
        "one removed": ([s for s in whole if s != 42], {"lost": 1}),
        "the last removed": (whole[:-1], {"lost": 1}),
        "one twice": (whole[:50] + [7] + whole[50:], {"lost": 0, "duplicates": 1}),
        "two swapped": (whole[:10] + [17, 10] + [s for s in whole[11:] if s != 17],
                        {"lost": 0, "duplicates": 0, "reordered": 1}),
    }
    failed = 0
    for name, (seqs, expected) in cases.items():
        result = checked(seqs)
        wrong = {k: result[k] for k, v in expected.items() if result[k] != v}
        print(f"selftest {name}: {'ok' if not wrong else f'WRONG {wrong}, expected {expected}'}")
        failed += bool(wrong)
    # Resuming: a stream's catch-up must start right after the live read; a super stream's, per
    # partition (its summary-wide offsets mix partitions: seed 23 once read partition 1 to 397
    # live and on from 398, while the summaries said 13,562 and 398).
    def part(stream, first, last):
        return {"stream": stream, "first_offset": first, "last_offset": last}
    live = {"last_offset": 13562, "partitions": [part("s-0", 0, 13562), part("s-1", 0, 397)]}
    resumes = {
        "a stream resumed right after": ({"last_offset": 9}, {"first_offset": 10}, 0),
        "a stream resumed past a gap": ({"last_offset": 9}, {"first_offset": 12}, 1),
        "a super stream resumed per partition": (
            live, {"first_offset": 398, "partitions": [part("s-0", None, None), part("s-1", 398, 500)]}, 0),
        "a super stream's partition resumed past a gap": (
            live, {"first_offset": 398, "partitions": [part("s-0", 13570, 13600), part("s-1", 398, 500)]}, 1),
    }
    for name, (live_summary, rest_summary, expected) in resumes.items():
        found = len(resume_problems(live_summary, rest_summary))
        print(f"selftest {name}: {'ok' if found == expected else f'WRONG {found} problems, expected {expected}'}")
        failed += found != expected
    return 1 if failed else 0


def main(argv):
    if len(argv) >= 2 and argv[1] == "selftest":
        return selftest()
    if len(argv) >= 2 and argv[1] == "arrivals":
        json.dump(arrivals(sys.stdin), sys.stdout)
        print()
        return 0
    if len(argv) >= 2 and argv[1] == "digest":
        json.dump(digest(sys.stdin), sys.stdout)
        print()
        return 0
    if len(argv) >= 3 and argv[1] == "report":
        return report(argv[2], "--json" in argv[3:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
