//! Metrics for `sys/metrics`, in Prometheus' text format: requests, the
//! latency of issuances per mount, leases by state, revocation outcomes,
//! plugin deadline hits, audit device failures, tokens created, logins and
//! requests refused by policy.
//!
//! One process-wide set, so that any layer can count without threading a
//! handle through; counting must stay cheap (atomics) and must never carry a
//! secret in a label.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::storage::LeaseState;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    op: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MountLabel {
    mount: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabel {
    plugin: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabel {
    plugin: String,
    capability: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeviceLabel {
    device: String,
}

type Latency = Family<MountLabel, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms to ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The broker's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    issuance: Latency,
    leases: Family<StateLabel, Gauge>,
    revoked: Counter,
    revocation_failures: Counter,
    plugin_refusals: Family<RefusalLabel, Counter>,
    deadline_hits: Family<PluginLabel, Counter>,
    audit_failures: Family<DeviceLabel, Counter>,
    tokens_created: Family<TypeLabel, Counter>,
    logins: Family<MountLabel, Counter>,
    denied: Counter,
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("broker");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "API requests by operation and status",
            requests.clone(),
        );
        let issuance: Latency = Family::new_with_constructor(latency_histogram);
        registry.register(
            "issuance_duration_seconds",
            "Time to issue a credential, by mount",
            issuance.clone(),
        );
        let leases = Family::<StateLabel, Gauge>::default();
        registry.register(
            "leases",
            "Leases by state, when last scraped",
            leases.clone(),
        );
        let revoked = Counter::default();
        registry.register("revocations", "Credentials revoked", revoked.clone());
        let revocation_failures = Counter::default();
        registry.register(
            "revocation_failures",
            "Revocation attempts that failed (and were rescheduled)",
            revocation_failures.clone(),
        );
        let deadline_hits = Family::<PluginLabel, Counter>::default();
        registry.register(
            "plugin_deadline_hits",
            "Plugin calls stopped at their deadline, by plugin",
            deadline_hits.clone(),
        );
        let plugin_refusals = Family::<RefusalLabel, Counter>::default();
        registry.register(
            "plugin_refusals",
            "Plugin requests the host refused (another origin, a denied command…), by plugin and capability",
            plugin_refusals.clone(),
        );
        let audit_failures = Family::<DeviceLabel, Counter>::default();
        registry.register(
            "audit_failures",
            "Entries an audit device could not write, by device",
            audit_failures.clone(),
        );
        let tokens_created = Family::<TypeLabel, Counter>::default();
        registry.register(
            "tokens_created",
            "Tokens created, by type (service, batch)",
            tokens_created.clone(),
        );
        let logins = Family::<MountLabel, Counter>::default();
        registry.register("logins", "Successful logins, by auth mount", logins.clone());
        let denied = Counter::default();
        registry.register(
            "permission_denied",
            "Requests refused because the token's policies do not grant them",
            denied.clone(),
        );
        Self {
            tokens_created,
            logins,
            denied,
            registry,
            requests,
            issuance,
            leases,
            revoked,
            revocation_failures,
            deadline_hits,
            plugin_refusals,
            audit_failures,
        }
    }

    /// A request answered.
    pub fn request(&self, op: &'static str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels { op, status })
            .inc();
    }

    /// A credential issued on `mount` in `seconds`.
    pub fn issued(&self, mount: &str, seconds: f64) {
        self.issuance
            .get_or_create(&MountLabel {
                mount: mount.to_owned(),
            })
            .observe(seconds);
    }

    /// A credential revoked.
    pub fn revoked(&self) {
        self.revoked.inc();
    }

    /// A revocation attempt failed.
    pub fn revocation_failed(&self) {
        self.revocation_failures.inc();
    }

    /// A plugin call hit its deadline.
    pub fn deadline_hit(&self, plugin: &str) {
        self.deadline_hits
            .get_or_create(&PluginLabel {
                plugin: plugin.to_owned(),
            })
            .inc();
    }

    /// The host refused a plugin's request to a capability.
    pub fn plugin_refused(&self, plugin: &str, capability: &str) {
        self.plugin_refusals
            .get_or_create(&RefusalLabel {
                plugin: plugin.to_owned(),
                capability: capability.to_owned(),
            })
            .inc();
    }

    /// An audit device failed to write an entry.
    pub fn audit_failure(&self, device: &str) {
        self.audit_failures
            .get_or_create(&DeviceLabel {
                device: device.to_owned(),
            })
            .inc();
    }

    /// A token of `kind` (service, batch) was created.
    pub fn token_created(&self, kind: &'static str) {
        self.tokens_created
            .get_or_create(&TypeLabel { r#type: kind })
            .inc();
    }

    /// A login through the auth mount `mount` succeeded.
    pub fn login(&self, mount: &str) {
        self.logins
            .get_or_create(&MountLabel {
                mount: mount.to_owned(),
            })
            .inc();
    }

    /// A request was refused by policy (403).
    pub fn denied(&self) {
        self.denied.inc();
    }

    /// The lease counts as storage reports them now.
    pub fn set_leases(&self, counts: &[(LeaseState, i64)]) {
        for state in [
            LeaseState::Pending,
            LeaseState::Active,
            LeaseState::Revoking,
            LeaseState::Irrevocable,
        ] {
            let n = counts
                .iter()
                .find(|(s, _)| *s == state)
                .map_or(0, |(_, n)| *n);
            self.leases
                .get_or_create(&StateLabel {
                    state: state.as_str(),
                })
                .set(n);
        }
    }

    /// Everything, in Prometheus' text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Everything, every sample labelled `node="<node>"`: nodes sharing a
    /// database are scraped apart and summed by whoever scrapes them. The
    /// id is checked to need no escaping (letters, digits, `-_.:`).
    pub fn encode_for_node(&self, node: &str) -> String {
        let text = self.encode();
        if node.is_empty()
            || !node
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        {
            return text;
        }
        let mut out = String::with_capacity(text.len() + text.len() / 4);
        for line in text.lines() {
            if line.starts_with('#') || line.is_empty() {
                out.push_str(line);
            } else if let Some(open) = line.find('{') {
                out.push_str(&line[..=open]);
                out.push_str(&format!("node=\"{node}\","));
                out.push_str(&line[open + 1..]);
            } else if let Some(space) = line.find(' ') {
                out.push_str(&line[..space]);
                out.push_str(&format!("{{node=\"{node}\"}}"));
                out.push_str(&line[space..]);
            } else {
                out.push_str(line);
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_gets_the_node_label_and_nothing_else_changes() {
        let m = Metrics::new();
        m.request("read", 200);
        m.revoked();
        let plain = m.encode();
        let labelled = m.encode_for_node("node-1:8200");
        assert!(
            labelled
                .contains(r#"broker_requests_total{node="node-1:8200",op="read",status="200"} 1"#),
            "{labelled}"
        );
        assert!(
            labelled.contains(r#"broker_revocations_total{node="node-1:8200"} 1"#),
            "{labelled}"
        );
        // Comments and the sample count are as they were.
        let comments = |t: &str| t.lines().filter(|l| l.starts_with('#')).count();
        assert_eq!(comments(&plain), comments(&labelled));
        assert_eq!(plain.lines().count(), labelled.lines().count());
        // An id that would need escaping is not used.
        assert_eq!(m.encode_for_node("a\"b"), plain);
    }
}
