//! The layering check: which crate may (transitively) depend on what.
//!
//! It reads `cargo metadata`, follows only *normal* dependency edges (dev- and build-dependencies do not end
//! up in a crate's library) and checks the invariants of `docs/ARCHITECTURE.md`. A violation names the whole
//! path, so the edge to cut is obvious. Run it with `cargo xtask check-layering`; `tests/layering.rs` runs it
//! under `cargo test --workspace`, with the public-API check of `crate::public_api`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::process::Command;

use anyhow::{Context as _, bail};
use serde::Deserialize;

use crate::{cargo_command, workspace_root};

/// Crates that are allowed anything: the HTTP binary and this tool.
const HTTP_CRATES: &[&str] = &["rental-api", "xtask"];

/// What one crate must not have among its transitive normal dependencies.
#[derive(Debug, Clone, Copy)]
enum Forbidden {
    /// These crates by name.
    Crates(&'static [&'static str]),
    /// Every other crate of the workspace.
    WorkspaceCrates,
}

/// One invariant: `krate` must not depend on `forbidden`, because `reason`.
#[derive(Debug, Clone)]
struct Rule {
    krate: String,
    forbidden: Forbidden,
    reason: &'static str,
}

impl Rule {
    fn new(krate: &str, forbidden: Forbidden, reason: &'static str) -> Self {
        Self { krate: krate.to_owned(), forbidden, reason }
    }
}

/// The rules of `docs/ARCHITECTURE.md` for a workspace with these members: the ones about named crates and,
/// for every member, the workspace-wide ones (actix-web only in the HTTP crates, `rental-testkit` only as a
/// dev-dependency).
fn rules_for(members: &[String]) -> Vec<Rule> {
    let mut rules = vec![
        Rule::new(
            "rental-domain",
            Forbidden::Crates(&["tokio", "sea-orm", "sqlx", "actix-web"]),
            "the domain is plain types and rules: no async runtime, no database, no HTTP",
        ),
        Rule::new("rental-monitor", Forbidden::WorkspaceCrates, "rental-monitor is a leaf that the other crates feed"),
        Rule::new(
            "rental-testkit",
            Forbidden::Crates(&["rental-repo", "rental-service", "rental-payments"]),
            "the test kit sits beside the layers it tests, not on top of them",
        ),
        Rule::new(
            "rental-service",
            Forbidden::Crates(&["rental-payments", "async-stripe"]),
            "the services know the PaymentGateway port, not Stripe",
        ),
        Rule::new(
            "rental-payments",
            Forbidden::Crates(&["rental-tasks", "rental-monitor"]),
            "the Stripe gateway implements a service port; the binary wires it to jobs and health",
        ),
    ];
    for member in members {
        if !HTTP_CRATES.contains(&member.as_str()) {
            rules.push(Rule::new(member, Forbidden::Crates(&["actix-web"]), "only rental-api knows HTTP"));
        }
        if member != "rental-testkit" {
            rules.push(Rule::new(
                member,
                Forbidden::Crates(&["rental-testkit"]),
                "rental-testkit is a dev-dependency only",
            ));
        }
    }
    rules
}

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The crate that breaks the rule.
    pub krate: String,
    /// The dependency it must not have.
    pub forbidden: String,
    /// Why the rule exists.
    pub reason: String,
    /// The dependency path from `krate` to `forbidden`, both included.
    pub path: Vec<String>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} must not depend on {} ({}), but does through: {}",
            self.krate,
            self.forbidden,
            self.reason,
            self.path.join(" -> ")
        )
    }
}

/// The parts of `cargo metadata --format-version 1` this check reads.
#[derive(Debug, Deserialize)]
struct Metadata {
    packages: Vec<Package>,
    workspace_members: Vec<String>,
    resolve: Option<Resolve>,
}

#[derive(Debug, Deserialize)]
struct Package {
    id: String,
    name: String,
}

#[derive(Debug, Deserialize)]
struct Resolve {
    nodes: Vec<Node>,
}

#[derive(Debug, Deserialize)]
struct Node {
    id: String,
    deps: Vec<NodeDep>,
}

#[derive(Debug, Deserialize)]
struct NodeDep {
    pkg: String,
    dep_kinds: Vec<DepKind>,
}

#[derive(Debug, Deserialize)]
struct DepKind {
    /// `null` for a normal dependency, `"dev"` or `"build"` otherwise.
    kind: Option<String>,
}

/// The resolved dependency graph restricted to normal edges, keyed by package name.
#[derive(Debug)]
pub struct DependencyGraph {
    /// Names of the workspace's crates, sorted.
    members: Vec<String>,
    /// Normal dependencies of each package, by name. Two versions of one crate share a name, which is what
    /// the rules talk about.
    edges: BTreeMap<String, Vec<String>>,
}

impl DependencyGraph {
    /// Builds the graph from the JSON printed by `cargo metadata --format-version 1`.
    ///
    /// # Errors
    /// When the JSON is not cargo metadata with a `resolve` section.
    pub fn from_metadata_json(json: &[u8]) -> anyhow::Result<Self> {
        let metadata: Metadata = serde_json::from_slice(json).context("cannot parse cargo metadata")?;
        let names: HashMap<&str, &str> = metadata.packages.iter().map(|p| (p.id.as_str(), p.name.as_str())).collect();
        let name_of = |id: &str| names.get(id).map(|n| (*n).to_owned()).unwrap_or_else(|| id.to_owned());
        let resolve = metadata.resolve.context("cargo metadata has no `resolve` section (was --no-deps given?)")?;

        let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for node in &resolve.nodes {
            let normal = node.deps.iter().filter(|d| d.dep_kinds.iter().any(|k| k.kind.is_none()));
            let entry = edges.entry(name_of(&node.id)).or_default();
            entry.extend(normal.map(|d| name_of(&d.pkg)));
            entry.sort();
            entry.dedup();
        }
        let mut members: Vec<String> = metadata.workspace_members.iter().map(|id| name_of(id)).collect();
        members.sort();
        Ok(Self { members, edges })
    }

    /// Runs `cargo metadata` on this workspace and builds the graph.
    ///
    /// # Errors
    /// When cargo cannot be run, fails, or prints something unexpected.
    pub fn of_workspace() -> anyhow::Result<Self> {
        let cargo = cargo_command();
        let manifest = workspace_root().join("Cargo.toml");
        let output = Command::new(&cargo)
            .args(["metadata", "--format-version", "1", "--manifest-path"])
            .arg(&manifest)
            .output()
            .with_context(|| format!("cannot run `{cargo} metadata`"))?;
        if !output.status.success() {
            bail!("`cargo metadata` failed: {}", String::from_utf8_lossy(&output.stderr).trim());
        }
        Self::from_metadata_json(&output.stdout)
    }

    /// The names of the workspace's crates, sorted.
    pub fn members(&self) -> &[String] {
        &self.members
    }

    /// The shortest path of normal dependencies from `from` to `to`, both included, if there is one.
    pub fn path(&self, from: &str, to: &str) -> Option<Vec<String>> {
        let mut parent: HashMap<&str, &str> = HashMap::new();
        let mut queue = VecDeque::from([from]);
        while let Some(current) = queue.pop_front() {
            for next in self.edges.get(current).into_iter().flatten() {
                if next == from || parent.contains_key(next.as_str()) {
                    continue;
                }
                parent.insert(next, current);
                if next == to {
                    let mut path = vec![to.to_owned()];
                    let mut step = to;
                    while let Some(previous) = parent.get(step) {
                        path.push((*previous).to_owned());
                        step = previous;
                    }
                    path.reverse();
                    return Some(path);
                }
                queue.push_back(next);
            }
        }
        None
    }

    /// Every broken invariant, in a stable order; empty when the layering holds.
    ///
    /// # Errors
    /// When a rule names a crate that is not in the workspace: a renamed crate must not silently escape
    /// its rule.
    pub fn violations(&self) -> anyhow::Result<Vec<Violation>> {
        let mut found = Vec::new();
        for rule in rules_for(&self.members) {
            if !self.members.contains(&rule.krate) {
                bail!("the layering rule for `{}` names a crate that is not in the workspace", rule.krate);
            }
            let forbidden: Vec<&str> = match rule.forbidden {
                Forbidden::Crates(names) => names.to_vec(),
                Forbidden::WorkspaceCrates => {
                    self.members.iter().map(String::as_str).filter(|m| *m != rule.krate).collect()
                }
            };
            for target in forbidden {
                if let Some(path) = self.path(&rule.krate, target) {
                    found.push(Violation {
                        krate: rule.krate.clone(),
                        forbidden: target.to_owned(),
                        reason: rule.reason.to_owned(),
                        path,
                    });
                }
            }
        }
        Ok(found)
    }
}

/// `cargo xtask check-layering`: prints every violation and fails when there is one.
///
/// # Errors
/// When cargo metadata cannot be read or a rule is broken.
pub fn run() -> anyhow::Result<()> {
    let graph = DependencyGraph::of_workspace()?;
    let violations = graph.violations()?;
    if violations.is_empty() {
        println!("layering holds for {} workspace crates", graph.members.len());
        return crate::public_api::run(&workspace_root());
    }
    for violation in &violations {
        eprintln!("layering violation: {violation}");
    }
    bail!("{} layering violation(s)", violations.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Metadata of a small fake workspace: `rental-domain -> chrono`, `rental-repo -> rental-domain, sea-orm ->
    /// tokio`, `rental-monitor -> serde`, `rental-service -> rental-repo`, `rental-payments -> rental-service`, with a dev-dependency of `rental-domain` on tokio, which is allowed.
    fn fake_metadata(extra_domain_dep: Option<&str>) -> Vec<u8> {
        let normal = serde_json::json!([{ "kind": null, "target": null }]);
        let dev = serde_json::json!([{ "kind": "dev", "target": null }]);
        let dep =
            |pkg: &str, kinds: &serde_json::Value| serde_json::json!({ "name": pkg, "pkg": pkg, "dep_kinds": kinds });
        let mut domain_deps = vec![dep("chrono", &normal), dep("tokio", &dev)];
        if let Some(extra) = extra_domain_dep {
            domain_deps.push(dep(extra, &normal));
        }
        let members =
            ["rental-domain", "rental-repo", "rental-monitor", "rental-testkit", "rental-service", "rental-payments"];
        let mut nodes = vec![
            serde_json::json!({ "id": "rental-domain", "deps": domain_deps }),
            serde_json::json!({ "id": "rental-repo", "deps": [dep("rental-domain", &normal), dep("sea-orm", &normal)] }),
            serde_json::json!({ "id": "sea-orm", "deps": [dep("tokio", &normal)] }),
            serde_json::json!({ "id": "rental-monitor", "deps": [dep("serde", &normal)] }),
            serde_json::json!({ "id": "rental-service", "deps": [dep("rental-repo", &normal)] }),
            serde_json::json!({ "id": "rental-payments", "deps": [dep("rental-service", &normal)] }),
        ];
        for name in ["chrono", "tokio", "serde", "actix-web"] {
            nodes.push(serde_json::json!({ "id": name, "deps": [] }));
        }
        let mut packages: Vec<_> = members.iter().map(|m| serde_json::json!({ "id": m, "name": m })).collect();
        for name in ["chrono", "tokio", "serde", "sea-orm", "actix-web"] {
            packages.push(serde_json::json!({ "id": name, "name": name }));
        }
        serde_json::to_vec(&serde_json::json!({
            "packages": packages,
            "workspace_members": members,
            "resolve": { "nodes": nodes },
        }))
        .unwrap()
    }

    #[test]
    fn a_clean_graph_has_no_violations() {
        let graph = DependencyGraph::from_metadata_json(&fake_metadata(None)).unwrap();
        assert_eq!(graph.violations().unwrap(), Vec::new());
        assert_eq!(graph.path("rental-repo", "tokio").unwrap(), ["rental-repo", "sea-orm", "tokio"]);
    }

    #[test]
    fn dev_dependencies_do_not_count() {
        let graph = DependencyGraph::from_metadata_json(&fake_metadata(None)).unwrap();
        assert_eq!(graph.path("rental-domain", "tokio"), None);
    }

    #[test]
    fn a_transitive_violation_names_the_whole_path() {
        let graph = DependencyGraph::from_metadata_json(&fake_metadata(Some("sea-orm"))).unwrap();
        let violations = graph.violations().unwrap();
        let paths: Vec<String> = violations.iter().map(|v| v.path.join(" -> ")).collect();
        assert_eq!(paths, ["rental-domain -> sea-orm -> tokio", "rental-domain -> sea-orm"]);
        assert!(violations[0].to_string().contains("rental-domain must not depend on tokio"));
    }
}
