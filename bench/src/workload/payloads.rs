//! The events' payloads: twelve variants per source, after the sample events in
//! `tests/fixtures/payloads/`, each about 1 KiB. Variants 0 to 5 fire triggers; 6 to 10 are near
//! misses (close to a condition, not inside it); 11 is the unchanged base.

use serde_json::{Value, json};

/// The payload of a variant, without the `bench` field the generator adds.
pub(super) fn payload(source: usize, variant: usize) -> Value {
    match source {
        0 => github_push(variant),
        1 => monitoring_alert(variant),
        _ => billing_event(variant),
    }
}

/// A GitHub push (after tests/fixtures/payloads/github-push.json).
fn github_push(variant: usize) -> Value {
    let mut p = json!({
        "ref": "refs/heads/feature/retry-after",
        "before": "9049f1265b7d61be4a8904a9a27120d2064dab3b",
        "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
        "repository": {
            "name": "hookline",
            "full_name": "acme/hookline",
            "html_url": "https://github.com/acme/hookline",
            "default_branch": "main"
        },
        "pusher": {"name": "octocat", "email": "octocat@example.com"},
        "sender": {"login": "octocat", "id": 583231, "type": "User"},
        "deleted": false,
        "forced": false,
        "compare": "https://github.com/acme/hookline/compare/9049f1265b7d...0d1a26e67d8f",
        "commits": [{
            "id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
            "message": "Retry 429 with Retry-After\n\nClamp the wait to the destination's maximum.",
            "timestamp": "2026-11-20T14:03:11+01:00",
            "author": {"name": "Mona Lisa", "email": "mona@example.com", "username": "mona"},
            "added": [],
            "modified": ["dispatcher/src/retry.rs", "dispatcher/src/deliver.rs"]
        }],
        "head_commit": {
            "id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
            "message": "Retry 429 with Retry-After",
            "author": {"name": "Mona Lisa", "username": "mona"}
        }
    });
    match variant {
        0 => p["ref"] = json!("refs/heads/main"),
        1 => p["ref"] = json!("refs/tags/v1.8.0"),
        2 => {
            p["ref"] = json!("refs/heads/release/1.8");
            p["forced"] = json!(true);
        }
        3 => {
            p["ref"] = json!("refs/heads/release/1.7");
            p["deleted"] = json!(true);
        }
        4 => {
            p["repository"]["name"] = json!("security-policies");
            p["repository"]["full_name"] = json!("acme/security-policies");
        }
        5 => {
            p["ref"] = json!("refs/heads/production");
            p["pusher"]["name"] = json!("deploy-bot");
            p["head_commit"]["message"] = json!("Revert \"Retry 429 with Retry-After\"");
        }
        // Near misses from here on: close to a condition, but not inside it.
        6 => {
            p["ref"] = json!("refs/heads/main");
            p["deleted"] = json!(true);
        }
        7 => p["ref"] = json!("refs/heads/release/1.9"),
        8 => p["pusher"]["name"] = json!("deploy-bot"),
        9 => p["ref"] = json!("refs/tags/nightly"),
        10 => p["forced"] = json!(true),
        _ => {}
    }
    p
}

/// A monitoring alert (after tests/fixtures/payloads/monitoring-alert.json).
fn monitoring_alert(variant: usize) -> Value {
    let mut p = json!({
        "event": "customer.alert.created",
        "account_external_id": "cus_123",
        "severity": "low",
        "message": "Disk usage above the warning threshold on the primary volume",
        "customer": {"name": "Acme", "external_id": "cus_123", "plan": "startup", "region": "us"},
        "alert": {
            "id": "al_7781",
            "metric": "disk_usage",
            "value": 0.71,
            "threshold": 0.9,
            "window": "5m",
            "started_at": "2026-11-23T06:58:00Z",
            "runbook": "https://runbooks.example.com/api-errors",
            "dashboard": "https://grafana.example.com/d/api-overview?orgId=1&var-service=search-api"
        },
        "count": 1,
        "labels": {
            "env": "prod",
            "region": "us-east-1",
            "service": "search-api",
            "team": "platform",
            "cluster": "prod-use1-a",
            "namespace": "search"
        },
        "fingerprint": "9f3c2a1b7d6e5f40",
        "links": {
            "silence": "https://alerts.example.com/silence/al_7781",
            "ack": "https://alerts.example.com/ack/al_7781"
        },
        "annotations": {
            "description": "The primary volume of search-api passed its warning threshold; compaction usually recovers space within the hour.",
            "owner": "platform-oncall@example.com"
        }
    });
    match variant {
        0 => {
            p["severity"] = json!("critical");
            p["customer"]["plan"] = json!("enterprise");
        }
        1 => {
            p["severity"] = json!("high");
            p["count"] = json!(4);
        }
        2 => {
            p["labels"]["service"] = json!("billing-api");
            p["alert"]["metric"] = json!("http_5xx_ratio");
        }
        3 => {
            p["alert"]["metric"] = json!("p99_latency_ms");
            p["alert"]["value"] = json!(870);
            p["alert"]["threshold"] = json!(500);
        }
        4 => p["event"] = json!("customer.alert.resolved"),
        5 => {
            p["labels"]["region"] = json!("eu-west-1");
            p["labels"]["env"] = json!("staging");
            p["severity"] = json!("high");
        }
        6 => {
            p["severity"] = json!("critical");
            p["labels"]["env"] = json!("staging");
        }
        7 => {
            p["severity"] = json!("high");
            p["count"] = json!(2);
        }
        8 => p["labels"]["service"] = json!("billing-api"),
        9 => {
            p["alert"]["metric"] = json!("p99_latency_ms");
            p["alert"]["value"] = json!(310);
            p["alert"]["threshold"] = json!(500);
        }
        10 => {
            p["event"] = json!("customer.alert.resolved");
            p["labels"]["env"] = json!("staging");
        }
        _ => {}
    }
    p
}

/// A billing provider's event (after tests/fixtures/payloads/stripe-invoice-payment-failed.json).
fn billing_event(variant: usize) -> Value {
    let mut p = json!({
        "id": "evt_1QzK8bL2x9Yc3T",
        "object": "event",
        "api_version": "2025-10-29",
        "created": 1795399000,
        "type": "invoice.payment_failed",
        "livemode": true,
        "pending_webhooks": 1,
        "data": {
            "object": {
                "id": "in_1QzK8aL2x9Yc3T",
                "object": "invoice",
                "customer": "cus_R2d2C3po",
                "customer_email": "billing@acme.example",
                "customer_name": "Acme Analytical Engines Ltd",
                "amount_due": 4900,
                "amount_paid": 0,
                "amount_remaining": 4900,
                "currency": "eur",
                "attempt_count": 1,
                "billing_reason": "subscription_cycle",
                "next_payment_attempt": 1795485400,
                "period_start": 1792807000,
                "period_end": 1795399000,
                "status": "open",
                "subscription": "sub_1PqR2sT3uV4wX5",
                "hosted_invoice_url": "https://invoice.example.com/i/acct_1/in_1QzK8a",
                "invoice_pdf": "https://invoice.example.com/i/acct_1/in_1QzK8a/pdf",
                "account_country": "DE",
                "collection_method": "charge_automatically",
                "lines": {
                    "object": "list",
                    "total_count": 1,
                    "data": [{"id": "il_1QzK8aL2x9Yc3T", "description": "Team plan (12 seats)", "amount": 4900, "quantity": 12}]
                }
            }
        },
        "request": {"id": null, "idempotency_key": null}
    });
    let object = &mut p["data"]["object"];
    match variant {
        0 => object["attempt_count"] = json!(3),
        1 => object["amount_due"] = json!(129900),
        2 => p["type"] = json!("customer.subscription.deleted"),
        3 => p["type"] = json!("charge.dispute.created"),
        4 => {
            p["type"] = json!("invoice.paid");
            p["data"]["object"]["currency"] = json!("usd");
        }
        5 => {
            object["customer_email"] = json!("ap@bigcorp.example");
            object["attempt_count"] = json!(4);
        }
        6 => object["attempt_count"] = json!(2),
        7 => {
            object["amount_due"] = json!(129900);
            object["currency"] = json!("usd");
        }
        8 => {
            p["type"] = json!("customer.subscription.deleted");
            p["livemode"] = json!(false);
        }
        9 => p["type"] = json!("invoice.paid"),
        10 => object["customer_email"] = json!("ap@smallcorp.example"),
        _ => {}
    }
    p
}
