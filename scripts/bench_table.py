#!/usr/bin/env python3
"""Turn the JSON summaries scripts/bench wrote (docs/benchmarks/*.json) into BENCHMARKS.md's tables."""
import json
import pathlib
import sys

out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "docs/benchmarks")


def load(name):
    path = out / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() and path.stat().st_size else None


def fmt(value, digits=2):
    return "–" if value is None else f"{value:,.{digits}f}"


print("| run | approvals/s | round trip p50 / p99 (ms) | verdict→NAS p50 / p99 / p99.9 (ms) | relay CPU per approval (ms) | overhead factor | Redis round trips / commands per approval | errors |")
print("|---|---|---|---|---|---|---|---|")
for name in ["memory-poll-c1", "memory-poll-c8", "memory-push-c8", "memory-poll-half-rate",
             "redis-poll-c1", "redis-poll-c8", "redis-push-c8", "redis-2-replicas-c8",
             "redis-2-replicas-half-rate", "cluster-poll-c8"]:
    run = load(name)
    if not run:
        continue
    latency = run["results"]["latency"]
    rt, wake = latency.get("roundtrip", {}), latency.get("verdict_to_nas", {})
    cost = run["cost"]
    redis = ""
    if cost.get("redis_commands_per_approval") is not None:
        redis = f"{fmt(cost.get('redis_round_trips_per_approval'), 1)} / {fmt(cost['redis_commands_per_approval'], 1)}"
    errors = sum(run["results"]["errors"].values())
    print(f"| {name} | {fmt(run['approvals_per_sec'], 0)} | {fmt(rt.get('p50_ms'))} / {fmt(rt.get('p99_ms'))} "
          f"| {fmt(wake.get('p50_ms'))} / {fmt(wake.get('p99_ms'))} / {fmt(wake.get('p999_ms'))} "
          f"| {fmt(cost.get('relay_cpu_ms_per_approval'), 3)} | {fmt(cost.get('overhead_factor'))} | {redis or '–'} | {errors} |")

hold = load("hold")
if hold:
    print()
    print("| hold | polls held | RSS before / held / after (MB) | RSS per held poll (KiB) | open files held / after | all woken in (s) | woken p50 / p99 (ms) | /healthz p99 (ms) | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    woken = hold["results"]["latency"].get("woken", {})
    health = hold["results"]["latency"].get("healthz", {})
    mb = lambda v: fmt(v / 1e6 if v is not None else None, 1)
    print(f"| {hold['polls']} | {fmt(hold['held_by_relay'], 0)} | {mb(hold['rss_baseline_bytes'])} / {mb(hold['rss_peak_bytes'])} / {mb(hold['rss_after_bytes'])} "
          f"| {fmt((hold['rss_per_poll_bytes'] or 0) / 1024, 1)} | {hold['open_files_peak']} / {hold['open_files_after']} | {fmt(hold['all_woken_secs'])} "
          f"| {fmt(woken.get('p50_ms'))} / {fmt(woken.get('p99_ms'))} | {fmt(health.get('p99_ms'))} | {sum(hold['results']['errors'].values())} |")

fanout = load("fanout")
if fanout:
    print()
    print("| fanout | pushes | pushes/s | relay CPU per push (µs) | send latency p50 / p99 (ms) | create p50 / p99 (ms) | errors |")
    print("|---|---|---|---|---|---|---|")
    send = fanout["results"]["latency"].get("push_send", {})
    create = fanout["results"]["latency"].get("create", {})
    print(f"| {fanout['challenges']} × {fanout['targets']} targets | {fanout['pushes']} | {fmt(fanout['pushes_per_sec'], 0)} "
          f"| {fmt(fanout.get('relay_cpu_us_per_push'), 0)} | {fmt(send.get('p50_ms'))} / {fmt(send.get('p99_ms'))} "
          f"| {fmt(create.get('p50_ms'))} / {fmt(create.get('p99_ms'))} | {sum(fanout['results']['errors'].values())} |")
