//! Resource files (`hookline apply -f hooks.toml`): load, validate everything, then write only
//! what changed. Nothing is written when anything is invalid.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use hookline_processor::template::Limits;
use hookline_runtime::resources::{ResourceSet, ResourceStore, ResourceWriter};
use hookline_runtime::validate::Problem;
use hookline_runtime::{KafkaSettings, topics};
use hookline_schemas::{Destination, Resource, Source, TopicKind, Trigger};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// How long `apply` waits to read the current resources.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The contents of a resource file.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceFile {
    /// `[[sources]]`: inbound webhooks.
    #[serde(default)]
    pub sources: Vec<Source>,
    /// `[[destinations]]`: outbound endpoints.
    #[serde(default)]
    pub destinations: Vec<Destination>,
    /// `[[triggers]]`: rules.
    #[serde(default)]
    pub triggers: Vec<Trigger>,
}

impl ResourceFile {
    /// Reads and parses a TOML file; errors say the line and column.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("could not read {}", path.display()))?;
        Self::parse(&text)
            .with_context(|| format!("{} is not a valid resource file", path.display()))
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// Every resource in the file.
    pub fn resources(&self) -> Vec<Resource> {
        let sources = self.sources.iter().cloned().map(Resource::Source);
        let destinations = self.destinations.iter().cloned().map(Resource::Destination);
        let triggers = self.triggers.iter().cloned().map(Resource::Trigger);
        sources.chain(destinations).chain(triggers).collect()
    }
}

/// Checks `resources`, the complete set that will exist: structure, references, and that every
/// trigger's condition and templates compile. The control API runs the same checks.
pub fn validate(resources: &[Resource], limits: &Limits) -> Vec<Problem> {
    hookline_processor::validate::resources(resources, limits)
}

pub use hookline_control::plan::{Plan, PlanView, field_changes};

/// Formats validation problems, one per line.
pub fn describe(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("  {p}\n")).collect()
}

/// Reads the current resources from Kafka; none when the resources topic does not exist yet
/// (it is not created here, so a dry run or an invalid file leaves the cluster as it was).
pub async fn current(settings: &KafkaSettings) -> anyhow::Result<ResourceSet> {
    let mut probe = settings.clone();
    probe.topics.create = false;
    match topics::ensure(&probe, &[TopicKind::Resources]).await {
        Ok(()) => {}
        Err(hookline_runtime::Error::MissingTopic(_)) => return Ok(ResourceSet::default()),
        Err(error) => return Err(error.into()),
    }
    let shutdown = CancellationToken::new();
    let (store, task) = ResourceStore::start(settings, shutdown.clone()).await?;
    let loaded = tokio::time::timeout(READ_TIMEOUT, store.wait_ready()).await;
    shutdown.cancel();
    let stopped = task.await;
    match loaded {
        Ok(Ok(())) => {}
        Ok(Err(_)) => match stopped {
            Ok(Err(error)) => return Err(error).context("could not read the current resources"),
            _ => bail!("could not read the current resources"),
        },
        Err(_) => bail!("could not read the current resources within {READ_TIMEOUT:?}"),
    }
    Ok(ResourceSet::clone(&store.snapshot()))
}

/// Validates `file` against what exists and writes the changes; with `dry_run`, only plans.
/// Writes nothing when anything is invalid.
pub async fn apply(
    settings: &KafkaSettings,
    file: &ResourceFile,
    prune: bool,
    dry_run: bool,
) -> anyhow::Result<Plan> {
    let wanted = file.resources();
    let existing = current(settings).await?;
    let plan = Plan::new(&existing, &wanted, prune);
    let mut result: Vec<Resource> = wanted;
    result.extend(plan.kept.iter().cloned());
    let problems = validate(&result, &Limits::default());
    if !problems.is_empty() {
        bail!(
            "nothing was written; fix these first:\n{}",
            describe(&problems)
        );
    }
    if dry_run || plan.is_empty() {
        return Ok(plan);
    }
    topics::ensure(settings, &[TopicKind::Resources]).await?;
    let writer = ResourceWriter::new(settings, "apply")?;
    // Referenced resources first (sources, then destinations, then triggers, created or changed
    // alike), so a trigger never names a destination that is not written yet; deletions last,
    // in the reverse order.
    let mut writes: Vec<&Resource> = plan.create.iter().chain(&plan.update).collect();
    writes.sort_by_key(|resource| resource.key().kind);
    for resource in writes {
        // A changed resource keeps its creation time (a new one gets the record's own).
        let created_at = existing
            .record(&resource.key())
            .and_then(|record| record.created_at);
        writer.put_created(resource, created_at).await?;
    }
    let mut deletions = plan.delete.clone();
    deletions.sort_by_key(|key| std::cmp::Reverse(key.kind));
    for key in &deletions {
        writer.delete(key).await?;
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../examples/hookline.toml");

    #[test]
    fn the_sample_file_is_valid() {
        let file = ResourceFile::parse(SAMPLE).unwrap();
        let problems = validate(&file.resources(), &Limits::default());
        assert!(problems.is_empty(), "{}", describe(&problems));
    }

    #[test]
    fn parse_errors_say_where() {
        let error = ResourceFile::parse("[[sources]]\nid = \"a\"\nauht = []\n").unwrap_err();
        let text = error.to_string();
        assert!(text.contains("line 3"), "{text}");
        assert!(text.contains("auht"), "{text}");
    }

    #[test]
    fn template_errors_are_reported_with_their_position() {
        let mut file = ResourceFile::parse(SAMPLE).unwrap();
        file.triggers[0].actions[0].body = "{\n  \"a\": {{ payload. }}\n}".into();
        let problems = validate(&file.resources(), &Limits::default());
        let text = describe(&problems);
        assert!(
            text.contains("actions[0].body") && text.contains("line 2"),
            "{text}"
        );
    }

    #[test]
    fn a_change_is_shown_field_by_field_with_secrets_masked() {
        let old = ResourceFile::parse(
            "[[destinations]]\nid = \"crm\"\nurl = \"https://a.example.com/hooks\"\n\
             secrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\n",
        )
        .unwrap()
        .resources();
        let new = ResourceFile::parse(
            "[[destinations]]\nid = \"crm\"\nurl = \"https://b.example.com/hooks\"\n\
             headers = { \"x-team\" = \"ops\" }\n\
             secrets = [\"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD\"]\n",
        )
        .unwrap()
        .resources();
        let changes = field_changes(&old[0], &new[0]);
        let text = changes.join("\n");
        assert!(
            text.contains(r#"url: "https://a.example.com/hooks" → "https://b.example.com/hooks""#),
            "{text}"
        );
        assert!(
            text.contains(r#"headers.x-team: (absent) → "ops""#),
            "{text}"
        );
        assert!(
            !text.contains("MfKQ9r8G") && !text.contains("C2FVsBQI"),
            "{text}"
        );
        assert!(text.contains("secrets[0]: (secret changed)"), "{text}");
        assert_eq!(changes.len(), 3, "{text}");
    }

    #[test]
    fn plans_create_change_keep_and_prune() {
        let file = ResourceFile::parse(SAMPLE).unwrap();
        let wanted = file.resources();
        let empty = Plan::new(&ResourceSet::default(), &wanted, false);
        assert_eq!(empty.create.len(), wanted.len());

        let mut current = ResourceSet::default();
        for resource in &wanted {
            current.put(resource.clone());
        }
        let again = Plan::new(&current, &wanted, false);
        assert!(again.is_empty(), "{}", again.summary());
        assert_eq!(again.unchanged.len(), wanted.len());

        let mut changed = file.clone();
        changed.destinations[0]
            .headers
            .insert("x-new".into(), "1".into());
        changed.sources.clear();
        let plan = Plan::new(&current, &changed.resources(), false);
        assert_eq!(plan.update.len(), 1);
        assert_eq!(plan.kept.len(), 1);
        assert!(plan.delete.is_empty());
        let pruned = Plan::new(&current, &changed.resources(), true);
        assert_eq!(pruned.delete.len(), 1);

        // The canary's own resources survive a prune.
        let canary = Destination::new(
            hookline_schemas::ResourceId::parse(crate::canary::ID).unwrap(),
            "http://127.0.0.1:9500/canary",
        );
        current.put(Resource::Destination(canary));
        let pruned = Plan::new(&current, &changed.resources(), true);
        assert_eq!(pruned.delete.len(), 1, "{}", pruned.summary());
    }
}
