#!/usr/bin/env python3
"""PromQL checks for tools/prometheus-e2e.sh, run against a real Prometheus
that scrapes a real Kora and has loaded tools/alerts.yml.

The expressions come from the shipped files, never from a list kept here:
the dashboard's panel targets from its JSON, the alerts from Prometheus'
own /api/v1/rules (so they are exactly what Prometheus parsed). Every
expression is queried and its answer judged for plausibility after the
workload the shell script ran. Prints one "ok"/"FAIL" line per check and a
final "checks: P passed, F failed" line.

Usage:
  prometheus-e2e-check.py healthy --prometheus URL --dashboard FILE \
      --metrics-url URL --ran get,set,... --failed lpush --shards N --dbsize N
  prometheus-e2e-check.py down --prometheus URL --instance HOST:PORT
  prometheus-e2e-check.py dashboard --dashboard FILE
"""

import argparse
import json
import math
import re
import sys
import time
import urllib.parse
import urllib.request

passed = 0
failed = 0


def ok(name, detail=""):
    global passed
    passed += 1
    print(f"ok   {name}" + (f"\n       -> {detail}" if detail else ""))


def bad(name, detail=""):
    global failed
    failed += 1
    print(f"FAIL {name}" + (f"\n       -> {detail}" if detail else ""))


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def query(prom, expr, at=None):
    """Instant query (at `at`, default now); returns [(labels, value)] or
    raises on an API error."""
    params = {"query": expr}
    if at is not None:
        params["time"] = f"{at:.3f}"
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode(params)
    try:
        body = get_json(url)
    except urllib.error.HTTPError as e:
        raise RuntimeError(e.read().decode(errors="replace")) from None
    if body.get("status") != "success":
        raise RuntimeError(json.dumps(body))
    data = body["data"]
    if data["resultType"] == "scalar":
        return [({}, float(data["result"][1]))]
    return [(s["metric"], float(s["value"][1])) for s in data["result"]]


def summarize(series, limit=8):
    def name(labels):
        keep = {k: v for k, v in labels.items() if k not in ("instance", "job", "__name__")}
        return ",".join(f"{k}={v}" for k, v in sorted(keep.items())) or "value"

    def num(v):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        return f"{v:.6g}"

    parts = [f"{name(l)}={num(v)}" for l, v in sorted(series, key=lambda s: name(s[0]))]
    more = f" (+{len(parts) - limit} more)" if len(parts) > limit else ""
    return " ".join(parts[:limit]) + more if parts else "(empty)"


# ---- the shipped dashboard -------------------------------------------------

VARIABLES = {"instance": ".+", "cmd": ".+"}


def dashboard_targets(path):
    """[(panel title, refId, expr with variables substituted)]."""
    with open(path) as f:
        dash = json.load(f)
    out = []

    def walk(panels):
        for p in panels:
            walk(p.get("panels", []))
            for t in p.get("targets", []):
                expr = t.get("expr", "")
                for var, value in VARIABLES.items():
                    expr = expr.replace("${" + var + "}", value).replace("$" + var, value)
                out.append((p.get("title", "?"), t.get("refId", "?"), expr))

    walk(dash.get("panels", []))
    return dash, out


def check_dashboard_file(path):
    try:
        dash, targets = dashboard_targets(path)
    except (OSError, json.JSONDecodeError) as e:
        bad("dashboard JSON parses", str(e))
        return
    ok("dashboard JSON parses", f"{path}: {len(targets)} queries")
    variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource", {})
    if ds.get("type") == "datasource" and ds.get("query") == "prometheus":
        ok("dashboard has a Prometheus datasource variable")
    else:
        bad("dashboard has a Prometheus datasource variable", json.dumps(ds))
    if 36 <= dash.get("schemaVersion", 0) <= 41 and dash.get("uid") and dash.get("id") is None:
        ok("dashboard importable (schemaVersion %s, uid %s, no id)" % (dash["schemaVersion"], dash["uid"]))
    else:
        bad("dashboard importable", f"schemaVersion={dash.get('schemaVersion')} uid={dash.get('uid')} id={dash.get('id')}")
    leftover = [e for _, _, e in targets if "$" in e]
    if leftover:
        bad("dashboard queries use only known variables", "; ".join(leftover))
    else:
        ok("dashboard queries use only known variables ($instance, $cmd)")
    panels = []

    def walk(ps):
        for p in ps:
            panels.append(p)
            walk(p.get("panels", []))

    walk(dash["panels"])
    wrong_ds = [p["title"] for p in panels if p.get("type") != "row"
                and (p.get("datasource", {}).get("uid") != "${datasource}"
                     or any(t.get("datasource", {}).get("uid") != "${datasource}" for t in p.get("targets", [])))]
    if wrong_ds:
        bad("every panel queries ${datasource}", ", ".join(wrong_ds))
    else:
        ok("every panel queries ${datasource}")
    exprs = " ".join(e for _, _, e in targets)
    types = {p.get("type") for p in panels}
    required = {
        "operations by cmd": "sum by (cmd) (rate(kora_commands_total" in exprs,
        "latency heatmap": "heatmap" in types and any(
            p.get("type") == "heatmap" and "kora_command_duration_seconds_bucket" in json.dumps(p) for p in panels),
        "p50 and p99 by command": "histogram_quantile(0.5, sum by (cmd, le)" in exprs
        and "histogram_quantile(0.99, sum by (cmd, le)" in exprs,
        "memory gauge in MiB": any(p.get("type") == "gauge" and "kora_memory_used_bytes" in json.dumps(p)
                                   and "/ 1024 / 1024" in json.dumps(p) for p in panels),
        "throughput in + out": re.search(r"rate\(kora_bytes_in_total[^)]*\)\s*\+\s*rate\(kora_bytes_out_total", exprs) is not None,
        "keys": "kora_keys_total" in exprs,
        "keys by shard": "kora_shard_keys" in exprs,
        "commands by shard": "kora_shard_commands_total" in exprs,
        # Many hosts (issue 16): per instance and summed over instances.
        "ops/s by instance": "sum by (instance) (rate(kora_commands_total" in exprs,
        "memory by instance": "sum by (instance) (kora_memory_used_bytes" in exprs,
        "cluster state per node": "kora_cluster_state" in exprs and "kora_cluster_node_info" in exprs,
        "slots owned per node": "kora_cluster_slots_owned" in exprs,
        "redirections by type": "sum by (type) (rate(kora_cluster_redirections_total" in exprs,
    }
    missing = [k for k, present in required.items() if not present]
    if missing:
        bad("dashboard has the panels the issue lists", "missing: " + ", ".join(missing))
    else:
        ok("dashboard has the panels the issue lists", ", ".join(required))


# ---- splitting an alert into what it measures -----------------------------

SET_OPS = ("and", "or", "unless")
COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")


def top_level_tokens(expr):
    """Yields (index, token) for set operators and comparisons outside any
    brackets or strings."""
    depth = 0
    i = 0
    quote = None
    while i < len(expr):
        c = expr[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
            i += 1
            continue
        if c in "\"'`":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            for op in SET_OPS:
                end = i + len(op)
                if (expr.startswith(op, i) and (i == 0 or not (expr[i - 1].isalnum() or expr[i - 1] == "_"))
                        and (end == len(expr) or not (expr[end].isalnum() or expr[end] == "_"))):
                    yield i, op
                    i = end
                    break
            else:
                for op in COMPARISONS:
                    if expr.startswith(op, i):
                        yield i, op
                        i += len(op)
                        break
                else:
                    i += 1
                continue
            continue
        i += 1


MODIFIER = re.compile(r"^\s*(?:bool\s+)?(?:(?:on|ignoring)\s*\([^)]*\)\s*)?(?:(?:group_left|group_right)\s*(?:\([^)]*\))?\s*)?")


def measured_parts(expr):
    """The left side of every comparison: "a > 1 and on (x) b > 2" gives
    ["a", "b"]."""
    operands, start = [], 0
    for i, op in top_level_tokens(expr):
        if op in SET_OPS:
            operands.append(expr[start:i])
            start = i + len(op)
    operands.append(expr[start:])
    parts = []
    for operand in operands:
        operand = MODIFIER.sub("", operand, count=1).strip()
        cut = next((i for i, op in top_level_tokens(operand) if op in COMPARISONS), None)
        parts.append((operand if cut is None else operand[:cut]).strip())
    return parts


# ---- plausibility -----------------------------------------------------------


def referenced_metrics(expr):
    return set(re.findall(r"\b(kora_[a-z0-9_]+|up)\b(?!\s*\()", expr))


def judge(expr, series, ctx):
    """Problems with an answer, as strings; empty when plausible."""
    if not series:
        return ["no data"]
    problems = []
    values = [v for _, v in series]
    is_rate = "rate(" in expr or "increase(" in expr
    # Latency per command (quantiles, _sum / _count) is NaN for a command
    # without calls in the window, so only the commands that ran are judged.
    if "histogram_quantile" in expr or "kora_command_duration_seconds_sum" in expr:
        ran = [(l, v) for l, v in series if l.get("cmd") in ctx["ran"]]
        missing = ctx["ran"] - {l.get("cmd") for l, _ in ran}
        if missing:
            problems.append(f"no value for {', '.join(sorted(missing))}, which ran")
        for l, v in ran:
            if not (math.isfinite(v) and 0 < v < 10):
                problems.append(f"{l.get('cmd')}: latency {v} not finite in (0, 10 s)")
        return problems
    for l, v in series:
        if not math.isfinite(v) or v < 0:
            problems.append(f"{summarize([(l, v)])} is not a finite non-negative number")
    if problems:
        return problems
    if "changes(kora_start_time_seconds" in expr:
        if any(v != 0 for v in values):
            problems.append("the server restarted during the test")
        return problems
    # Cluster figures are legitimately 0 on a healthy node: no failed
    # peers, no redirections, a node that owns no slots.
    if max(values) <= 0 and not cluster_only(expr):
        problems.append("every value is 0" + (" although the workload ran" if is_rate else ""))
    by_cmd = "by (cmd)" in expr and is_rate
    if by_cmd and "kora_commands_total" in expr:
        got = {l.get("cmd"): v for l, v in series}
        for cmd in ctx["ran"]:
            if not got.get(cmd, 0) > 0:
                problems.append(f"{cmd} ran but its rate is {got.get(cmd)}")
    if by_cmd and "kora_command_failed_total" in expr:
        got = {l.get("cmd"): v for l, v in series}
        for cmd in ctx["failed"]:
            if not got.get(cmd, 0) > 0:
                problems.append(f"{cmd} failed on purpose but its error rate is {got.get(cmd)}")
    if re.fullmatch(r"(sum\()?kora_keys_total(\{[^}]*\})?\)?", expr.strip()):
        if sum(values) != ctx["dbsize"]:
            problems.append(f"keys {sum(values)} != DBSIZE {ctx['dbsize']}")
    if "kora_shard_" in expr and not expr.startswith("sum(") and len(series) != ctx["shards"]:
        problems.append(f"{len(series)} series, expected one per shard ({ctx['shards']})")
    if "kora_shard_up" in expr or re.match(r"up\{", expr):
        want = ctx["shards"] if expr.startswith("sum(") else 1
        if any(v != want for v in values):
            problems.append(f"expected {want}")
    if "group_left" in expr and "kora_shard_keys" in expr and abs(sum(values) - 1) > 1e-9:
        problems.append(f"shares sum to {sum(values)}, not 1")
    if "kora_keyspace_hits_total" in expr and "kora_keyspace_misses_total" in expr and "/" in expr:
        if not all(0 < v <= 1 for v in values):
            problems.append("hit ratio outside (0, 1]")
    return problems


def cluster_only(expr):
    """The cluster-mode families an expression reads (kora_cluster_enabled
    aside): a standalone server does not export them."""
    return {m for m in referenced_metrics(expr) if m.startswith("kora_cluster_") and m != "kora_cluster_enabled"}


def check_expr(name, prom, expr, ctx, served):
    if cluster_only(expr) and not cluster_only(expr) & served:
        ok(f"{name}: cluster mode only, not exported by this standalone server", expr)
        return None
    try:
        series = query(prom, expr, ctx["at"])
    except (RuntimeError, OSError) as e:
        bad(name, f"{expr}\n          query failed: {e}")
        return None
    problems = judge(expr, series, ctx)
    if problems == ["no data"]:
        unserved = sorted(m for m in referenced_metrics(expr) if m not in served)
        if unserved:
            problems.append(f"not in this server's /metrics: {', '.join(unserved)}")
    if problems:
        bad(name, f"{expr}\n          {summarize(series)}\n          " + "; ".join(problems))
    else:
        ok(name, f"{expr}\n          {summarize(series)}")
    return series


def served_metrics(metrics_url):
    with urllib.request.urlopen(metrics_url, timeout=10) as r:
        text = r.read().decode()
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    return names | {"up"}


def alerting_rules(prom):
    groups = get_json(f"{prom}/api/v1/rules")["data"]["groups"]
    return [r for g in groups for r in g["rules"] if r["type"] == "alerting"]


def healthy(args):
    # One evaluation time for every query, so that pairs like p50/p99 and
    # an alert and its measured sides see the same samples.
    ctx = {"ran": set(args.ran.split(",")), "failed": set(args.failed.split(",")),
           "shards": args.shards, "dbsize": args.dbsize, "at": time.time()}
    served = served_metrics(args.metrics_url)
    _, targets = dashboard_targets(args.dashboard)
    answers = {}
    for title, ref, expr in targets:
        answers[(title, ref)] = (expr, check_expr(f'dashboard "{title}" {ref}', args.prometheus, expr, ctx, served))

    # p50 <= p99 per command, for each panel that shows both.
    quantile = re.compile(r"histogram_quantile\((0\.\d+),")
    by_panel = {}
    for (title, ref), (expr, series) in answers.items():
        m = quantile.search(expr)
        if m and series is not None:
            by_panel.setdefault((title, quantile.sub("histogram_quantile(Q,", expr)), {})[float(m.group(1))] = series
    for (title, _), qs in by_panel.items():
        if 0.5 in qs and 0.99 in qs:
            p50 = {l.get("cmd"): v for l, v in qs[0.5]}
            p99 = {l.get("cmd"): v for l, v in qs[0.99]}
            wrong = [f"{c}: p50 {p50[c]} > p99 {p99.get(c)}" for c in ctx["ran"]
                     if c in p50 and not p50[c] <= p99.get(c, -1)]
            detail = " ".join(f"{c}={p50[c] * 1e6:.1f}us<={p99[c] * 1e6:.1f}us" for c in sorted(ctx["ran"]) if c in p50 and c in p99)
            (bad if wrong else ok)(f'dashboard "{title}": p50 <= p99 for every command that ran', "; ".join(wrong) or detail)

    rules = alerting_rules(args.prometheus)
    names = [r["name"] for r in rules]
    if len(rules) >= 5:
        ok(f"Prometheus loaded {len(rules)} alerting rules", ", ".join(names))
    else:
        bad("Prometheus loaded the alerting rules", ", ".join(names))
    for rule in rules:
        name, expr = rule["name"], rule["query"]
        if rule["health"] == "ok" and not rule.get("lastError"):
            ok(f"alert {name}: evaluated by Prometheus without error")
        else:
            bad(f"alert {name}: evaluated by Prometheus without error", f"health={rule['health']} {rule.get('lastError', '')}")
        try:
            firing = query(args.prometheus, expr, ctx["at"])
        except (RuntimeError, OSError) as e:
            bad(f"alert {name}: query", str(e))
            continue
        if firing:
            bad(f"alert {name}: quiet on a healthy server", f"{expr}\n          {summarize(firing)}")
        else:
            ok(f"alert {name}: quiet on a healthy server", expr)
        for part in measured_parts(expr):
            check_expr(f"alert {name}: measured side", args.prometheus, part, ctx, served)
    active = get_json(f"{args.prometheus}/api/v1/alerts")["data"]["alerts"]
    if active:
        bad("no alert pending or firing", "; ".join(f"{a['labels']['alertname']} {a['state']}" for a in active))
    else:
        ok("no alert pending or firing")


def down(args):
    rules = {r["name"]: r for r in alerting_rules(args.prometheus)}
    if "KoraDown" not in rules:
        bad("KoraDown is loaded")
        return
    expr = rules["KoraDown"]["query"]
    deadline = time.time() + 20
    series, state = [], None
    while time.time() < deadline:
        series = [s for s in query(args.prometheus, expr) if s[0].get("instance") == args.instance]
        alerts = [a for a in get_json(f"{args.prometheus}/api/v1/alerts")["data"]["alerts"]
                  if a["labels"].get("alertname") == "KoraDown" and a["labels"].get("instance") == args.instance]
        state = alerts[0]["state"] if alerts else None
        if series and state:
            break
        time.sleep(0.5)
    (ok if series else bad)(f"alert KoraDown: expression returns the stopped instance", f"{expr}\n          {summarize(series)}")
    (ok if state in ("pending", "firing") else bad)(
        "alert KoraDown: Prometheus put it in pending state (for: 1m)", f"state={state}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("phase", choices=["dashboard", "healthy", "down"])
    p.add_argument("--prometheus")
    p.add_argument("--dashboard")
    p.add_argument("--metrics-url")
    p.add_argument("--ran", default="")
    p.add_argument("--failed", default="")
    p.add_argument("--shards", type=int, default=0)
    p.add_argument("--dbsize", type=int, default=0)
    p.add_argument("--instance")
    args = p.parse_args()
    try:
        {"dashboard": lambda: check_dashboard_file(args.dashboard), "healthy": lambda: healthy(args),
         "down": lambda: down(args)}[args.phase]()
    except Exception as e:  # a crash of the checker is a failed check, not a pass
        bad(f"{args.phase} checks ran to the end", f"{type(e).__name__}: {e}")
    print(f"checks: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
