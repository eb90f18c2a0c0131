#!/usr/bin/env python3
"""The checks behind scripts/check-deploy (run that; it calls these subcommands in order).

  static                 rules, their tests, runbook, dashboard, provisioning, compose, topics,
                         Dockerfile and the pending-metrics list agree with each other
  resources ...          writes the resource file the live check runs `hookline dev` with
  load --ingest URL      sends a small, bounded, mixed load to a local `hookline dev`
  prom-config ...        writes a Prometheus config: deploy/prometheus/prometheus.yml's jobs and
                         rules, every Hookline job scraping the local `hookline dev`
  verify ...             metric names referenced by rules and dashboard exist (exported, or
                         listed in deploy/PENDING_METRICS.txt), the catalogue covers them, and
                         every expression evaluates on the real Prometheus server

Needs Python 3.9+ and PyYAML. Talks to loopback addresses only.
"""

import argparse
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERTS_TEST = DEPLOY / "prometheus" / "alerts_test.yml"
PROM_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "hookline.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "hookline.yml"
RUNBOOK = DEPLOY / "RUNBOOK.md"
METRICS_DOC = DEPLOY / "METRICS.md"
PENDING = DEPLOY / "PENDING_METRICS.txt"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
CREATE_TOPICS = DEPLOY / "compose" / "create-topics.sh"
KAFKA_POM = ROOT / "scripts" / "kafka" / "pom.xml"
TOPICS_RS = ROOT / "schemas" / "src" / "topics.rs"
KAFKA_RS = ROOT / "runtime" / "src" / "kafka.rs"

RUNBOOK_BASE = "https://github.com/hookline/hookline/blob/main/deploy/RUNBOOK.md#"
ROLES = ("ingest", "processor", "dispatcher", "control")
# What issue 7 asks the rules to cover; deleting one of these fails the check.
REQUIRED_ALERTS = {
    "HooklineRoleDown", "HooklineIngestErrorRatioHigh", "HooklineProduceErrors",
    "HooklineDispatchErrorBudgetBurnFast", "HooklineDispatchErrorBudgetBurnSlow",
    "HooklineConsumerLagHigh", "HooklineDeadLetters", "HooklineRebalanceStorm",
    "HooklineSsrfBlocked", "HooklineCanaryFailing", "HooklineCanaryAbsent",
}
REQUIRED_ROWS = ["Overview", "Ingest", "Processor", "Dispatcher", "Kafka", "Control API", "Resources"]
# Series Prometheus makes itself.
SYNTHETIC = {"up", "ALERTS", "ALERTS_FOR_STATE"}
# Grafana's built-in variables, replaced before a dashboard query is sent to Prometheus.
GRAFANA_VARS = {"$__rate_interval": "1m", "${__rate_interval}": "1m", "$__interval": "15s",
                "${__interval}": "15s", "$__range": "1h", "${__range}": "1h"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")

failures = []


def fail(message):
    failures.append(message)
    print(f"  FAIL: {message}")


def note(message):
    print(f"  {message}")


def finish(what):
    if failures:
        print(f"check-deploy: {what}: {len(failures)} problem(s)", file=sys.stderr)
        sys.exit(1)
    print(f"  {what}: ok")


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


# --- PromQL -----------------------------------------------------------------------------------

PROMQL_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "atan2", "inf", "nan", "Inf", "NaN", "start", "end",
}


def strip_strings(expr):
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)


def metric_names(expr):
    """Metric names a PromQL expression selects (not functions, keywords, labels or numbers)."""
    s = strip_strings(expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\boffset\s+-?[0-9a-z]+", " ", s)
    s = re.sub(r"(?<![A-Za-z0-9_:.])\d+(\.\d*)?([eE][-+]?\d+)?", " ", s)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        token = m.group(0)
        if token in PROMQL_KEYWORDS or s[m.end():].lstrip().startswith("("):
            continue
        names.add(token)
    return names


def selectors(expr):
    """(metric name, [label names]) for each `name{...}` selector of an expression."""
    out = []
    for m in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}", expr):
        labels = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"", m.group(2))
        out.append((m.group(1), labels))
    return out


def grafana_to_promql(expr):
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    return expr


# --- What the rules and the dashboard query -----------------------------------------------------

def rule_groups():
    return load_yaml(ALERTS).get("groups", [])


def dashboard_panels(dashboard):
    for panel in dashboard.get("panels", []):
        yield panel
        for inner in panel.get("panels", []) or []:
            yield inner


def expressions():
    """[(where, promql)] for every rule and every dashboard target, Grafana variables replaced."""
    out = []
    for group in rule_groups():
        for rule in group.get("rules", []):
            name = rule.get("alert") or rule.get("record")
            out.append((f"rule {name}", rule["expr"].strip()))
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    for panel in dashboard_panels(dashboard):
        for target in panel.get("targets", []) or []:
            if target.get("expr"):
                where = f"panel \"{panel.get('title')}\" {target.get('refId', '')}"
                out.append((where, grafana_to_promql(target["expr"])))
    return out


def recorded_names():
    return {r["record"] for g in rule_groups() for r in g.get("rules", []) if "record" in r}


def read_pending():
    """{name: (type, reason)} from deploy/PENDING_METRICS.txt."""
    pending = {}
    for number, line in enumerate(PENDING.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 3 or not METRIC_NAME.match(parts[0]) or parts[1] not in (
                "counter", "gauge", "histogram"):
            fail(f"{PENDING.name}:{number}: expected `name type reason`, got {line!r}")
            continue
        pending[parts[0]] = (parts[1], parts[2])
    return pending


def expand(name, kind):
    return {name + s for s in HISTOGRAM_SUFFIXES} if kind == "histogram" else {name}


# --- static -----------------------------------------------------------------------------------

def github_anchor(heading):
    anchor = heading.strip().lower()
    anchor = re.sub(r"[^\w\- ]", "", anchor)
    return anchor.replace(" ", "-")


def check_rules():
    alerts = {}
    for group in rule_groups():
        for rule in group.get("rules", []):
            if "alert" not in rule:
                continue
            name = rule["alert"]
            if name in alerts:
                fail(f"alert {name} is defined twice")
            alerts[name] = rule
            severity = (rule.get("labels") or {}).get("severity")
            if severity not in ("critical", "warning"):
                fail(f"alert {name}: severity must be critical or warning, is {severity!r}")
            annotations = rule.get("annotations") or {}
            for key in ("summary", "description", "runbook_url"):
                if not str(annotations.get(key, "")).strip():
                    fail(f"alert {name}: missing annotation {key}")
            url = annotations.get("runbook_url", "")
            if not url.startswith(RUNBOOK_BASE):
                fail(f"alert {name}: runbook_url must start with {RUNBOOK_BASE}")
    missing = REQUIRED_ALERTS - alerts.keys()
    if missing:
        fail(f"alerts.yml lacks required alert(s): {', '.join(sorted(missing))}")
    return alerts


def check_alert_tests(alerts):
    tests = load_yaml(ALERTS_TEST)
    if [Path(f).name for f in tests.get("rule_files", [])] != [ALERTS.name]:
        fail(f"{ALERTS_TEST.name} must test exactly {ALERTS.name}")
    firing, quiet = set(), set()
    for test in tests.get("tests", []):
        for case in test.get("alert_rule_test", []) or []:
            name = case.get("alertname")
            if name not in alerts:
                fail(f"{ALERTS_TEST.name}: test {test.get('name')!r} names unknown alert {name}")
            (firing if case.get("exp_alerts") else quiet).add(name)
    for name in sorted(alerts):
        if name not in firing:
            fail(f"alert {name} has no firing test case in {ALERTS_TEST.name}")
        if name not in quiet:
            fail(f"alert {name} has no quiet test case (exp_alerts: []) in {ALERTS_TEST.name}")
    both = sum(1 for name in alerts if name in firing and name in quiet)
    note(f"{len(alerts)} alerts, {both} with both a firing and a quiet test case")


def check_runbook(alerts):
    text = RUNBOOK.read_text(encoding="utf-8")
    headings = re.findall(r"^##\s+(.+?)\s*$", text, flags=re.M)
    anchors = {github_anchor(h) for h in headings}
    for name, rule in alerts.items():
        url = rule.get("annotations", {}).get("runbook_url", "")
        anchor = url.split("#", 1)[-1]
        if anchor != github_anchor(name):
            fail(f"alert {name}: runbook_url should end in #{github_anchor(name)}")
        if anchor not in anchors:
            fail(f"alert {name}: {RUNBOOK.name} has no section `## {name}`")
    for heading in headings:
        if heading.startswith("Hookline") and heading not in alerts:
            fail(f"{RUNBOOK.name} has a section for unknown alert {heading}")


def check_dashboard():
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    if not dashboard.get("uid") or not dashboard.get("title"):
        fail("dashboard needs a uid and a title")
    variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        fail("dashboard needs a `datasource` variable of type datasource, query prometheus")
    ids = set()
    rows = []
    heatmaps = 0
    for panel in dashboard_panels(dashboard):
        title = panel.get("title", "?")
        pid = panel.get("id")
        if pid in ids:
            fail(f"panel {title!r}: duplicate id {pid}")
        ids.add(pid)
        pos = panel.get("gridPos") or {}
        if not all(isinstance(pos.get(k), int) for k in "hwxy") or pos["x"] + pos["w"] > 24:
            fail(f"panel {title!r}: gridPos must have integer h, w, x, y within 24 columns")
        if panel.get("type") == "row":
            rows.append(title)
            continue
        heatmaps += panel.get("type") == "heatmap"
        if (panel.get("datasource") or {}).get("uid") != "${datasource}":
            fail(f"panel {title!r}: datasource must be ${{datasource}}")
        targets = panel.get("targets") or []
        if not targets:
            fail(f"panel {title!r}: no queries")
        for target in targets:
            if not target.get("expr", "").strip():
                fail(f"panel {title!r}: a query has no expr")
            if (target.get("datasource") or {}).get("uid") not in (None, "${datasource}"):
                fail(f"panel {title!r}: a query's datasource must be ${{datasource}}")
        if not panel.get("description"):
            fail(f"panel {title!r}: say what question it answers in its description")
    if rows != REQUIRED_ROWS:
        fail(f"dashboard rows must be {REQUIRED_ROWS}, are {rows}")
    if not heatmaps:
        fail("dashboard needs the dispatcher latency heatmap")
    note(f"dashboard: {len(ids) - len(rows)} panels in {len(rows)} rows")


def default_of(value):
    """Resolves compose interpolation `${VAR:-default}` / `${VAR-default}` to the default."""
    def sub(m):
        body = m.group(1)
        for sep in (":-", "-", ":?", "?"):
            if sep in body:
                name, default = body.split(sep, 1)
                return default if "-" in sep else ""
        return os.environ.get(body, "")
    return re.sub(r"\$\{([^}]+)\}", sub, str(value))


def env_of(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: default_of(v) for k, v in env.items()}


def mounts_of(service):
    out = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            out.append((volume.get("source"), volume.get("target")))
        else:
            parts = str(volume).split(":")
            out.append((parts[0], parts[1] if len(parts) > 1 else None))
    return out


def topic_kinds():
    """(all suffixes, compacted suffixes) as schemas/src/topics.rs defines them."""
    text = TOPICS_RS.read_text(encoding="utf-8")
    # TopicKind::suffix names the topics; RetryTier::suffix the retry tiers' topics.
    suffix_fns = re.findall(r"fn suffix\(self\)[^{]*\{(.*?)\n    \}", text, re.S)
    pairs = dict(re.findall(r"Self::(\w+)\s*=>\s*\"([a-z_.0-9-]+)\"", "\n".join(suffix_fns)))
    compacted_fn = re.search(r"fn compacted\(self\)[^{]*\{(.*?)\n    \}", text, re.S)
    compacted = re.findall(r"Self::(\w+)", compacted_fn.group(1) if compacted_fn else "")
    return set(pairs.values()), {pairs[v] for v in compacted if v in pairs}


def check_compose(prom_config):
    compose = load_yaml(COMPOSE)
    services = compose.get("services") or {}
    needed = {"kafka", "topics", "apply", "receiver", "prometheus", "grafana", *ROLES}
    missing = needed - services.keys()
    if missing:
        fail(f"docker-compose.yml lacks service(s): {', '.join(sorted(missing))}")
        return
    for name, service in services.items():
        for source, _target in mounts_of(service):
            if source and source.startswith("./") and not (ROOT / source).exists():
                fail(f"compose {name}: mounts {source}, which does not exist")
        build = service.get("build")
        if isinstance(build, dict) and not (ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")).exists():
            fail(f"compose {name}: its Dockerfile does not exist")
        for dep, cond in (service.get("depends_on") or {}).items():
            condition = cond.get("condition") if isinstance(cond, dict) else "service_started"
            target = services.get(dep)
            if target is None:
                fail(f"compose {name}: depends on unknown service {dep}")
            elif condition == "service_healthy" and not (target.get("healthcheck") or {}).get("test"):
                fail(f"compose {name}: waits for {dep} to be healthy, but {dep} has no healthcheck")
            elif condition == "service_completed_successfully" and str(target.get("restart", "no")) != "no":
                fail(f"compose {name}: waits for {dep} to complete, but {dep} restarts")
        one_shot = str(service.get("restart", "no")) == "no"
        if not one_shot and not (service.get("healthcheck") or {}).get("test"):
            fail(f"compose {name}: a long-running service needs a healthcheck")

    # Kafka: the official image, in KRaft mode, the version the tests run (scripts/kafka/pom.xml).
    kafka = services["kafka"]
    image = default_of(kafka.get("image", ""))
    tested = re.search(r"<kafka.version>([^<]+)</kafka.version>", KAFKA_POM.read_text(encoding="utf-8"))
    if not image.startswith("apache/kafka:"):
        fail(f"compose kafka: use the official apache/kafka image, not {image}")
    elif tested and image.split(":", 1)[1] != tested.group(1):
        fail(f"compose kafka: image {image} differs from the Kafka the tests run ({tested.group(1)}, scripts/kafka/pom.xml)")
    kenv = env_of(kafka)
    if set(kenv.get("KAFKA_PROCESS_ROLES", "").split(",")) != {"broker", "controller"}:
        fail("compose kafka: KAFKA_PROCESS_ROLES must be broker,controller (KRaft)")
    if any("ZOOKEEPER" in k for k in kenv):
        fail("compose kafka: no ZooKeeper settings in KRaft mode")
    if kenv.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE") != "false":
        fail("compose kafka: auto.create.topics.enable must be false, as in scripts/kafka-local")
    advertised = {l.split("://", 1)[1] for l in kenv.get("KAFKA_ADVERTISED_LISTENERS", "").split(",") if "://" in l}

    # Roles: one command each, the broker Kafka advertises, the admin port Prometheus scrapes.
    jobs = {}
    for job in prom_config.get("scrape_configs", []):
        for sd in job.get("dns_sd_configs", []) or []:
            for dns in sd.get("names", []):
                jobs[job["job_name"]] = (dns, sd.get("port"))
        for sc in job.get("static_configs", []) or []:
            for target in sc.get("targets", []):
                host, _, port = target.rpartition(":")
                jobs.setdefault(job["job_name"], (host, int(port)))
    partitions = set()
    for role in ROLES:
        service = services[role]
        env = env_of(service)
        command = service.get("command") or []
        if command[:1] != [role]:
            fail(f"compose {role}: command must start with {role!r}")
        brokers = set(env.get("HOOKLINE_KAFKA_BROKERS", "").split(","))
        if not brokers or not brokers <= advertised:
            fail(f"compose {role}: HOOKLINE_KAFKA_BROKERS {sorted(brokers)} is not what kafka advertises {sorted(advertised)}")
        admin_port = int(env.get("HOOKLINE_ADMIN_ADDR", ":0").rsplit(":", 1)[1] or 0)
        job = jobs.get(f"hookline-{role}")
        if not job:
            fail(f"prometheus.yml has no job hookline-{role}")
        elif job != (role, admin_port):
            fail(f"prometheus.yml job hookline-{role} scrapes {job}, compose serves /metrics at ({role!r}, {admin_port})")
        if not env.get("HOOKLINE_ADMIN_ADDR", "").startswith("0.0.0.0:"):
            fail(f"compose {role}: HOOKLINE_ADMIN_ADDR must listen on 0.0.0.0 to be scraped")
        partitions.add(env.get("HOOKLINE_TOPIC_PARTITIONS"))
    apply_cmd = services["apply"].get("command") or []
    mounted = dict((t, s) for s, t in mounts_of(services["apply"]))
    if apply_cmd[:2] != ["apply", "-f"] or len(apply_cmd) < 3 or mounted.get(apply_cmd[2]) != "./deploy/compose/hookline.toml":
        fail("compose apply: must run `apply -f` on the mounted deploy/compose/hookline.toml")

    # Topics: the one-shot initialiser creates every topic kind Hookline knows, as Hookline would.
    script = CREATE_TOPICS.read_text(encoding="utf-8")
    listed = set(re.search(r'^TOPICS="([^"]*)"', script, re.M).group(1).split())
    compacted = set(re.search(r'^COMPACTED_TOPICS="([^"]*)"', script, re.M).group(1).split())
    kinds, kinds_compacted = topic_kinds()
    if not kinds:
        fail(f"could not read the topic kinds from {TOPICS_RS.relative_to(ROOT)}")
    if listed | compacted != kinds or compacted != kinds_compacted:
        fail(f"create-topics.sh creates {sorted(listed)} + compacted {sorted(compacted)}, "
             f"Hookline knows {sorted(kinds)} with compacted {sorted(kinds_compacted)}")
    max_bytes = re.search(r"MAX_RECORD_BYTES: usize = ([0-9 *]+);", KAFKA_RS.read_text(encoding="utf-8"))
    script_bytes = re.search(r"^MAX_RECORD_BYTES=(\d+)", script, re.M)
    if not max_bytes or not script_bytes or eval(max_bytes.group(1), {}) != int(script_bytes.group(1)):
        fail("create-topics.sh MAX_RECORD_BYTES differs from runtime::kafka::MAX_RECORD_BYTES")
    topics_env = env_of(services["topics"])
    partitions.add(topics_env.get("HOOKLINE_TOPIC_PARTITIONS"))
    if len(partitions) != 1:
        fail(f"compose: roles and topics disagree on HOOKLINE_TOPIC_PARTITIONS: {sorted(map(str, partitions))}")

    # Prometheus runs deploy/prometheus/prometheus.yml with its rules; Grafana gets both files.
    prom = services["prometheus"]
    prom_mounts = dict(mounts_of(prom))
    target = prom_mounts.get("./deploy/prometheus")
    config_flag = [c for c in prom.get("command") or [] if c.startswith("--config.file=")]
    if not target or config_flag != [f"--config.file={target}/prometheus.yml"]:
        fail("compose prometheus: must mount ./deploy/prometheus and run its prometheus.yml")
    version = default_of(prom.get("image", "")).rsplit(":", 1)[-1]
    if not version.startswith("v2."):
        fail(f"compose prometheus: {version} is not the 2.x line the rules are tested with")
    datasource = load_yaml(DATASOURCES)["datasources"][0]
    ds = urllib.parse.urlparse(datasource["url"])
    prom_port = int(default_of(next((p for p in prom.get("ports", [])), "::9090")).rsplit(":", 1)[1])
    if ds.hostname != "prometheus" or (ds.port or 80) != prom_port:
        fail(f"grafana datasource {datasource['url']} is not the prometheus service")
    grafana_mounts = dict(mounts_of(services["grafana"]))
    provider_path = load_yaml(DASHBOARD_PROVIDERS)["providers"][0]["options"]["path"]
    dash_target = grafana_mounts.get("./deploy/grafana/hookline.json", "")
    if os.path.dirname(dash_target) != provider_path:
        fail(f"grafana: hookline.json is mounted at {dash_target}, the provider reads {provider_path}")
    for sub in ("datasources", "dashboards"):
        if grafana_mounts.get(f"./deploy/grafana/provisioning/{sub}") != f"/etc/grafana/provisioning/{sub}":
            fail(f"grafana: mount ./deploy/grafana/provisioning/{sub} at /etc/grafana/provisioning/{sub}")
    note(f"compose: {len(services)} services; Kafka {image}, topics {sorted(kinds)}, jobs {sorted(jobs)}")


def check_dockerfile():
    text = DOCKERFILE.read_text(encoding="utf-8")
    stages = re.findall(r"^FROM\s+(\S+)", text, re.M)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    if len(stages) < 2:
        fail("Dockerfile must be multi-stage (build, then a slim runtime)")
    if not users or users[-1].split(":")[0] in ("0", "root"):
        fail("Dockerfile must run as a non-root USER")
    for needle in ("cargo build --release", "cmake", "libssl-dev", "/usr/local/bin/hookline"):
        if needle not in text:
            fail(f"Dockerfile lacks {needle!r}")
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    if "target" not in ignored:
        fail(".dockerignore must leave out target/")


def cmd_static(_args):
    alerts = check_rules()
    check_alert_tests(alerts)
    check_runbook(alerts)
    check_dashboard()
    check_compose(load_yaml(PROM_CONFIG))
    check_dockerfile()
    pending = read_pending()
    for where, expr in expressions():
        if not expr:
            fail(f"{where}: empty expression")
    note(f"{len(expressions())} expressions, {len(pending)} pending metric names")
    finish("static checks")


# --- resources, load, prom-config -------------------------------------------------------------

RESOURCES = """\
# Written by deploy/check/check_deploy.py for scripts/check-deploy: resources that make every
# labelled metric of every role appear under a small load.
[[sources]]
id = "github"
name = "GitHub (sample)"
auth = [{{ type = "bearer", tokens = ["dev-token"] }}]
keep_headers = ["X-GitHub-Event"]

[[sources]]
id = "limited"
name = "Rate limited to 2 requests a minute"
auth = [{{ type = "bearer", tokens = ["dev-token"] }}]
rate_limit = {{ per_minute = 2 }}

[[sources]]
id = "faults"
name = "Events that fail downstream"
auth = [{{ type = "bearer", tokens = ["dev-token"] }}]

[[destinations]]
id = "echo"
name = "Echo receiver"
url = "http://{echo}/chat"

[[destinations]]
id = "not-found"
name = "Answers 404"
url = "http://{admin}/no-such-path"

[[destinations]]
id = "closed-port"
name = "Nothing listens"
url = "http://{closed}/"

[[destinations]]
id = "disabled"
name = "Disabled"
enabled = false
url = "http://{echo}/disabled"

[[triggers]]
id = "push-to-chat"
name = "Pushes to main"
when = {{ sources = ["github"] }}
if = 'payload.ref == "refs/heads/main"'
[[triggers.actions]]
destination = "echo"
body = '{{"text": {{{{ payload.pusher.name }}}}}}'

[[triggers]]
id = "faults"
name = "Faults"
when = {{ sources = ["faults"] }}
if = 'payload.n is defined'
[[triggers.actions]]
destination = "not-found"
body = '{{"n": {{{{ payload.n }}}}}}'
[[triggers.actions]]
destination = "closed-port"
body = '{{"n": {{{{ payload.n }}}}}}'
[[triggers.actions]]
destination = "disabled"
body = '{{"n": {{{{ payload.n }}}}}}'

[[triggers]]
id = "render-error"
name = "Renders a missing field"
when = {{ sources = ["faults"] }}
if = 'payload.render_error is defined'
[[triggers.actions]]
destination = "echo"
body = '{{"missing": {{{{ payload.no_such_field }}}}}}'
"""


def cmd_resources(args):
    sys.stdout.write(RESOURCES.format(echo=args.echo, admin=args.admin, closed=args.closed))


def post(url, body, headers, timeout=5):
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return 0


def cmd_load(args):
    base = args.ingest.rstrip("/") + "/inbound-webhooks/"
    good = {"Authorization": "Bearer dev-token", "Content-Type": "application/json"}
    push = json.dumps({"ref": "refs/heads/main", "pusher": {"name": "octocat"}}).encode()
    other = json.dumps({"ref": "refs/heads/dev", "pusher": {"name": "octocat"}}).encode()
    plan = (
        [("github", push, {**good, "X-GitHub-Event": "push"})] * 120
        + [("github", other, good)] * 20
        + [("github", push, {**good, "Authorization": "Bearer wrong-token"})] * 20
        + [("github", b'{"ref": ', good)] * 10
        + [("no-such-source", push, good)] * 5
        + [("github", push, {**good, "Content-Type": "text/plain"})] * 5
        + [("github", b"[" + b"0," * 600_000 + b"0]", good)] * 1
        + [("github", other, {**good, "Idempotency-Key": "check-deploy-1"})] * 2
        + [("limited", push, good)] * 6
        + [("faults", json.dumps({"n": n}).encode(), good) for n in range(5)]
        + [("faults", b'{"render_error": true}', good)] * 3
    )
    deadline = time.monotonic() + args.timeout
    statuses = {}
    for source, body, headers in plan:
        if time.monotonic() > deadline:
            fail(f"load did not finish within {args.timeout} s")
            break
        status = post(base + source, body, headers)
        statuses[status] = statuses.get(status, 0) + 1
    print("  load: " + ", ".join(f"{n} x {s}" for s, n in sorted(statuses.items())))
    for expected in (202, 400, 401, 404, 413, 415, 429):
        if expected not in statuses:
            fail(f"load: no request was answered {expected}")
    finish("load")


def cmd_prom_config(args):
    config = load_yaml(PROM_CONFIG)
    config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str((PROM_CONFIG.parent / f).resolve()) for f in config.get("rule_files", [])]
    jobs = []
    for job in config.get("scrape_configs", []):
        if job["job_name"].startswith("hookline-"):
            jobs.append({"job_name": job["job_name"], "static_configs": [{"targets": [args.target]}]})
        elif job["job_name"] == "prometheus":
            jobs.append({"job_name": "prometheus", "static_configs": [{"targets": [args.self_addr]}]})
    config["scrape_configs"] = jobs
    config.pop("alerting", None)
    yaml.safe_dump(config, sys.stdout, sort_keys=False)


# --- verify -----------------------------------------------------------------------------------

def parse_exposition(text):
    """({sample name: set of label names}, {family name: type})"""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            types[name] = kind.strip()
        elif line and not line.startswith("#"):
            m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s", line)
            if m:
                labels = set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)=\"", m.group(2) or ""))
                samples.setdefault(m.group(1), set()).update(labels)
    return samples, types


def declared_names():
    """Metric names the Rust sources declare (string literals outside #[cfg(test)] code)."""
    names = set()
    for path in [*ROOT.glob("src/**/*.rs"), *ROOT.glob("*/src/**/*.rs")]:
        if path.parts[len(ROOT.parts)] in ("target", "tests", "bench"):
            continue
        text = path.read_text(encoding="utf-8").split("#[cfg(test)]", 1)[0]
        names.update(re.findall(r'"((?:hookline|process)_[a-z0-9_]+)"', text))
    return names


def prom_get(base, path, params=None, timeout=10):
    url = base.rstrip("/") + path + ("?" + urllib.parse.urlencode(params) if params else "")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            return json.loads(error.read())
        except ValueError:
            return {"status": "error", "error": f"HTTP {error.code}"}


def cmd_verify(args):
    pending = read_pending()
    pending_series = set().union(*(expand(n, k) for n, (k, _) in pending.items())) if pending else set()
    samples, types = {}, {}
    for path in sorted(Path(args.metrics_dir).glob("*.prom")):
        s, t = parse_exposition(path.read_text(encoding="utf-8"))
        for name, labels in s.items():
            samples.setdefault(name, set()).update(labels)
        types.update(t)
    exported = set(samples)
    families = set(types)
    declared = declared_names()
    declared_series = {d + s for d in declared for s in ("",) + HISTOGRAM_SUFFIXES}
    recorded = recorded_names()

    # 1. Every referenced name exists: exported, declared in the sources, recorded, or pending.
    exprs = expressions()
    referenced = {}
    for where, expr in exprs:
        for name in metric_names(expr):
            referenced.setdefault(name, []).append(where)
    unknown_label_uses = []
    for where, expr in exprs:
        for name, labels in selectors(expr):
            if name in samples:
                for label in labels:
                    if label not in samples[name] | {"job", "instance"}:
                        unknown_label_uses.append(f"{where}: {name} has no label {label!r}")
    for problem in unknown_label_uses:
        fail(problem)
    only_declared = []
    for name, wheres in sorted(referenced.items()):
        if name in exported or name in SYNTHETIC or name in recorded or name in pending_series:
            continue
        if name in declared_series:
            only_declared.append(name)
            continue
        fail(f"{wheres[0]}: metric {name} is neither exported by Hookline nor listed in {PENDING.name}")
    if only_declared:
        note("declared in the sources but not seen under the check's load (queries return empty): "
             + ", ".join(only_declared))

    # 2. The pending list stays honest: nothing in it is exported, everything in it is used.
    used = set(referenced)
    for name, (kind, _) in sorted(pending.items()):
        if expand(name, kind) & (exported | declared_series) or name in families:
            fail(f"{name} is exported now: remove it from {PENDING.name} (and check its type and labels)")
        if not expand(name, kind) & used:
            fail(f"{name} is listed in {PENDING.name} but no rule or panel uses it")

    # 3. The catalogue names every exported, declared and pending metric, and nothing else.
    doc = METRICS_DOC.read_text(encoding="utf-8")
    documented = set(re.findall(r"`((?:hookline|process)_[a-z0-9_]+)`", doc))
    for name in sorted(families | declared | set(pending)):
        if name not in documented:
            fail(f"{METRICS_DOC.name} does not document {name}")
    known = families | declared | set(pending) | exported | declared_series
    for name in sorted(documented - known):
        fail(f"{METRICS_DOC.name} documents {name}, which nothing exports and {PENDING.name} does not list")
    for name in sorted(n for n in families if n.startswith("hookline_")):
        kind = types[name]
        if kind == "counter" and not name.endswith("_total"):
            fail(f"counter {name} must end in _total")
        if kind != "counter" and name.endswith("_total"):
            fail(f"{kind} {name} must not end in _total")

    # 4. Prometheus scraped every Hookline job and evaluated every rule without error.
    targets = prom_get(args.prom, "/api/v1/targets").get("data", {}).get("activeTargets", [])
    for target in targets:
        if target.get("health") != "up":
            fail(f"target {target.get('labels', {}).get('job')} is {target.get('health')}: {target.get('lastError')}")
    jobs = {t.get("labels", {}).get("job") for t in targets}
    for role in ROLES:
        if f"hookline-{role}" not in jobs:
            fail(f"Prometheus has no target for job hookline-{role}")
    deadline = time.monotonic() + 30
    while True:
        groups = prom_get(args.prom, "/api/v1/rules").get("data", {}).get("groups", [])
        rules = [r for g in groups for r in g.get("rules", [])]
        if rules and all(r.get("health") != "unknown" for r in rules) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    expected_rules = sum(len(g.get("rules", [])) for g in rule_groups())
    if len(rules) != expected_rules:
        fail(f"Prometheus loaded {len(rules)} rules, alerts.yml has {expected_rules}")
    for rule in rules:
        if rule.get("health") != "ok":
            fail(f"rule {rule.get('name')}: health {rule.get('health')}: {rule.get('lastError')}")

    # 5. Every expression evaluates: data, or a valid empty result.
    with_data, empty = 0, []
    for where, expr in exprs:
        answer = prom_get(args.prom, "/api/v1/query", {"query": expr})
        if answer.get("status") != "success":
            fail(f"{where}: query failed: {answer.get('error')}\n        {expr}")
            continue
        if answer["data"]["result"]:
            with_data += 1
        else:
            names = metric_names(expr)
            if names & pending_series:
                reason = "uses a pending metric"
            elif where.startswith("rule Hookline"):
                reason = "alert condition false: not firing"
            else:
                reason = "no such series under this load"
            empty.append(f"{where} ({reason})")
    note(f"{len(exprs)} expressions evaluated: {with_data} with data, {len(empty)} empty")
    for item in empty:
        note(f"  empty: {item}")
    note(f"{len(families)} metric families exported, {len(pending)} pending, "
         f"{len(referenced)} names referenced")
    finish("live checks")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("static").set_defaults(func=cmd_static)
    p = sub.add_parser("resources")
    p.add_argument("--echo", required=True)
    p.add_argument("--admin", required=True)
    p.add_argument("--closed", required=True)
    p.set_defaults(func=cmd_resources)
    p = sub.add_parser("load")
    p.add_argument("--ingest", required=True)
    p.add_argument("--timeout", type=float, default=60)
    p.set_defaults(func=cmd_load)
    p = sub.add_parser("prom-config")
    p.add_argument("--target", required=True)
    p.add_argument("--self-addr", required=True)
    p.set_defaults(func=cmd_prom_config)
    p = sub.add_parser("verify")
    p.add_argument("--prom", required=True)
    p.add_argument("--metrics-dir", required=True)
    p.set_defaults(func=cmd_verify)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
