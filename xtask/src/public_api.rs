//! The public-API check: no sea-orm or sqlx type is reachable from `rental-service`'s public API.
//!
//! `cargo tree` cannot see this (rental-service must depend on rental-repo, which depends on sea-orm), so the
//! check reads the sources with `syn`. It collects the types named by every `pub` item of rental-service (the
//! fields of public structs, the variants of public enums, the signatures of public functions and methods,
//! public aliases, constants and re-exports, and the traits implemented), follows the rental-repo types among
//! them into rental-repo's sources (their public fields and variants, transitively), and reports every path
//! that names `sea_orm`, `sqlx` or a type a file imported from them. A caller of rental-service therefore never
//! holds a driver type, and can match on every error without depending on the driver.
//!
//! It reads syntax, not resolved types: `pub` items of private modules count as public (the crate re-exports
//! most of them), and methods of rental-repo types are not followed (a caller passes a `Database` along but
//! does not need its methods from the service's API).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use syn::visit::Visit;
use syn::{Fields, ImplItem, Item, UseTree, Visibility};

/// Crates whose types must not be reachable.
const DRIVER_CRATES: &[&str] = &["sea_orm", "sqlx", "sea_query"];

/// One source file: its path (for the report) and its text.
#[derive(Debug, Clone)]
pub struct Source {
    /// Where it is, for the report.
    pub path: String,
    /// Its text.
    pub text: String,
}

/// A driver type reachable from the public API.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Leak {
    /// The public item through which it is reachable, e.g. `rental_repo::RepoError::Database`.
    pub item: String,
    /// The driver type, e.g. `sea_orm::DbErr`.
    pub driver_type: String,
    /// The file of the item.
    pub path: String,
}

impl fmt::Display for Leak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}) exposes {}", self.item, self.path, self.driver_type)
    }
}

/// What the check found: the leaks, and the public types it inspected (so a test can tell that it looked).
#[derive(Debug, Default)]
pub struct Report {
    /// Driver types reachable from the public API.
    pub leaks: Vec<Leak>,
    /// Every type whose public parts were inspected, as `crate::Name`.
    pub inspected: BTreeSet<String>,
}

/// Where an imported name comes from, per file: `DbErr` -> `sea_orm::DbErr`.
type Imports = BTreeMap<String, String>;

/// One parsed file with its imports.
struct Parsed {
    path: String,
    file: syn::File,
    imports: Imports,
}

/// Collects the paths a type or signature names, resolving a leading imported name through the file's imports.
struct PathCollector<'a> {
    imports: &'a Imports,
    paths: Vec<String>,
}

impl<'ast> Visit<'ast> for PathCollector<'_> {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if let Some(first) = segments.first() {
            let resolved = match self.imports.get(first) {
                Some(full) => std::iter::once(full.clone()).chain(segments[1..].iter().cloned()).collect::<Vec<_>>(),
                None => segments,
            };
            self.paths.push(resolved.join("::"));
        }
        syn::visit::visit_path(self, path);
    }
}

fn parse(sources: &[Source]) -> anyhow::Result<Vec<Parsed>> {
    sources
        .iter()
        .map(|source| {
            let file = syn::parse_file(&source.text).with_context(|| format!("cannot parse {}", source.path))?;
            let mut imports = Imports::new();
            for item in &file.items {
                if let Item::Use(item) = item {
                    collect_imports(&item.tree, &mut Vec::new(), &mut imports);
                }
            }
            Ok(Parsed { path: source.path.clone(), file, imports })
        })
        .collect()
}

/// Records every name a `use` tree brings in, with the full path it stands for.
fn collect_imports(tree: &UseTree, prefix: &mut Vec<String>, imports: &mut Imports) {
    match tree {
        UseTree::Path(path) => {
            prefix.push(path.ident.to_string());
            collect_imports(&path.tree, prefix, imports);
            prefix.pop();
        }
        UseTree::Name(name) => {
            let full = prefix.iter().cloned().chain(std::iter::once(name.ident.to_string())).collect::<Vec<_>>();
            imports.insert(name.ident.to_string(), full.join("::"));
        }
        UseTree::Rename(rename) => {
            let full = prefix.iter().cloned().chain(std::iter::once(rename.ident.to_string())).collect::<Vec<_>>();
            imports.insert(rename.rename.to_string(), full.join("::"));
        }
        UseTree::Glob(_) => {}
        UseTree::Group(group) => {
            for tree in &group.items {
                collect_imports(tree, prefix, imports);
            }
        }
    }
}

fn is_pub(vis: &Visibility) -> bool {
    matches!(vis, Visibility::Public(_))
}

/// A public item's name and the paths its public parts name.
struct Exposed {
    name: String,
    paths: Vec<String>,
}

/// The paths named by the public parts of `item`; `only` restricts to the types of that name.
fn exposed(item: &Item, imports: &Imports, only: Option<&str>) -> Vec<Exposed> {
    let mut out = Vec::new();
    let collect = |visit: &dyn Fn(&mut PathCollector<'_>)| {
        let mut collector = PathCollector { imports, paths: Vec::new() };
        visit(&mut collector);
        collector.paths
    };
    let wanted = |name: &str| only.is_none_or(|only| only == name);
    match item {
        Item::Struct(s) if is_pub(&s.vis) && wanted(&s.ident.to_string()) => {
            let paths = collect(&|c| {
                for field in s.fields.iter().filter(|f| is_pub(&f.vis)) {
                    c.visit_type(&field.ty);
                }
            });
            out.push(Exposed { name: s.ident.to_string(), paths });
        }
        Item::Enum(e) if is_pub(&e.vis) && wanted(&e.ident.to_string()) => {
            for variant in &e.variants {
                let paths = collect(&|c| {
                    if let Fields::Named(_) | Fields::Unnamed(_) = variant.fields {
                        for field in &variant.fields {
                            c.visit_type(&field.ty);
                        }
                    }
                });
                out.push(Exposed { name: format!("{}::{}", e.ident, variant.ident), paths });
            }
        }
        Item::Type(t) if is_pub(&t.vis) && wanted(&t.ident.to_string()) => {
            out.push(Exposed { name: t.ident.to_string(), paths: collect(&|c| c.visit_type(&t.ty)) });
        }
        // Functions, constants, re-exports and impls only count for the crate whose API is checked.
        _ if only.is_some() => {}
        Item::Fn(f) if is_pub(&f.vis) => {
            out.push(Exposed { name: f.sig.ident.to_string(), paths: collect(&|c| c.visit_signature(&f.sig)) });
        }
        Item::Const(k) if is_pub(&k.vis) => {
            out.push(Exposed { name: k.ident.to_string(), paths: collect(&|c| c.visit_type(&k.ty)) });
        }
        Item::Static(s) if is_pub(&s.vis) => {
            out.push(Exposed { name: s.ident.to_string(), paths: collect(&|c| c.visit_type(&s.ty)) });
        }
        Item::Use(u) if is_pub(&u.vis) => {
            let mut reexported = Imports::new();
            collect_imports(&u.tree, &mut Vec::new(), &mut reexported);
            for (name, full) in reexported {
                out.push(Exposed { name: format!("pub use {name}"), paths: vec![full] });
            }
        }
        Item::Impl(imp) => {
            let self_name = type_name(&imp.self_ty);
            if let Some((_, trait_path, _)) = &imp.trait_ {
                // `impl From<DbErr> for ServiceError` lets a driver type into the API as well.
                let paths = collect(&|c| c.visit_path(trait_path));
                out.push(Exposed { name: format!("impl for {self_name}"), paths });
            }
            for impl_item in &imp.items {
                if let ImplItem::Fn(f) = impl_item
                    && (is_pub(&f.vis) || imp.trait_.is_some())
                {
                    let paths = collect(&|c| c.visit_signature(&f.sig));
                    out.push(Exposed { name: format!("{self_name}::{}", f.sig.ident), paths });
                }
            }
        }
        Item::Mod(m) => {
            if let Some((_, items)) = &m.content {
                for item in items {
                    out.extend(exposed(item, imports, only));
                }
            }
        }
        _ => {}
    }
    out
}

fn type_name(ty: &syn::Type) -> String {
    match ty {
        syn::Type::Path(p) => p.path.segments.last().map_or_else(String::new, |s| s.ident.to_string()),
        _ => String::from("_"),
    }
}

/// The names of the public structs, enums and aliases defined in `files`.
fn defined_types(files: &[Parsed]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for parsed in files {
        for item in &parsed.file.items {
            match item {
                Item::Struct(s) if is_pub(&s.vis) => names.insert(s.ident.to_string()),
                Item::Enum(e) if is_pub(&e.vis) => names.insert(e.ident.to_string()),
                Item::Type(t) if is_pub(&t.vis) => names.insert(t.ident.to_string()),
                _ => false,
            };
        }
    }
    names
}

fn driver_path(path: &str) -> bool {
    let first = path.split("::").next().unwrap_or_default();
    DRIVER_CRATES.contains(&first)
}

/// Checks the public API of the service crate (`service`) and of the repository types reachable from it
/// (`repo`, the sources of the crate imported as `repo_crate`).
///
/// # Errors
/// When a source does not parse.
pub fn check(service: &[Source], repo: &[Source], repo_crate: &str) -> anyhow::Result<Report> {
    let service = parse(service)?;
    let repo = parse(repo)?;
    let repo_types = defined_types(&repo);
    let mut report = Report::default();
    let mut queue = VecDeque::new();
    let record = |exposed: Vec<Exposed>, path: &str, krate: &str, queue: &mut VecDeque<String>, report: &mut Report| {
        for item in exposed {
            for named in item.paths {
                if driver_path(&named) {
                    report.leaks.push(Leak {
                        item: format!("{krate}::{}", item.name),
                        driver_type: named,
                        path: path.to_owned(),
                    });
                } else if let Some(rest) = named.strip_prefix(&format!("{repo_crate}::")) {
                    queue.push_back(rest.rsplit("::").next().unwrap_or(rest).to_owned());
                } else if krate == repo_crate && repo_types.contains(&named) {
                    queue.push_back(named);
                } else if krate == repo_crate
                    && let Some(name) = named.strip_prefix("crate::")
                {
                    queue.push_back(name.rsplit("::").next().unwrap_or(name).to_owned());
                }
            }
        }
    };
    for parsed in &service {
        let all: Vec<Exposed> =
            parsed.file.items.iter().flat_map(|item| exposed(item, &parsed.imports, None)).collect();
        record(all, &parsed.path, "rental_service", &mut queue, &mut report);
        for item in &parsed.file.items {
            if let Item::Struct(s) = item
                && is_pub(&s.vis)
            {
                report.inspected.insert(format!("rental_service::{}", s.ident));
            } else if let Item::Enum(e) = item
                && is_pub(&e.vis)
            {
                report.inspected.insert(format!("rental_service::{}", e.ident));
            }
        }
    }
    while let Some(name) = queue.pop_front() {
        if !repo_types.contains(&name) || !report.inspected.insert(format!("{repo_crate}::{name}")) {
            continue;
        }
        for parsed in &repo {
            let found: Vec<Exposed> =
                parsed.file.items.iter().flat_map(|item| exposed(item, &parsed.imports, Some(&name))).collect();
            record(found, &parsed.path, repo_crate, &mut queue, &mut report);
        }
    }
    report.leaks.sort();
    report.leaks.dedup();
    Ok(report)
}

/// Reads every `.rs` file under `dir`.
///
/// # Errors
/// When the directory or a file cannot be read.
pub fn sources_under(dir: &Path) -> anyhow::Result<Vec<Source>> {
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
                out.push(Source { path: path.display().to_string(), text });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// The check on this workspace: rental-service's API and the rental-repo types it reaches.
///
/// # Errors
/// When a source cannot be read or parsed.
pub fn check_workspace(root: &Path) -> anyhow::Result<Report> {
    let service = sources_under(&root.join("crates/rental-service/src"))?;
    let repo = sources_under(&root.join("crates/rental-repo/src"))?;
    check(&service, &repo, "rental_repo")
}

/// `cargo xtask check-layering`'s second half: fails when a driver type is reachable.
///
/// # Errors
/// When a driver type is reachable from rental-service's public API.
pub fn run(root: &Path) -> anyhow::Result<()> {
    let report = check_workspace(root)?;
    if report.leaks.is_empty() {
        println!("no sea-orm or sqlx type in rental-service's public API ({} types inspected)", report.inspected.len());
        return Ok(());
    }
    for leak in &report.leaks {
        eprintln!("public API leak: {leak}");
    }
    bail!("{} driver type(s) reachable from rental-service's public API", report.leaks.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(path: &str, text: &str) -> Source {
        Source { path: path.into(), text: text.into() }
    }

    const REPO: &str = r"
        use sea_orm::DbErr;
        pub enum RepoError { NotFound, Database(#[source] DatabaseError), Leaky(DbErr) }
        pub struct DatabaseError(Box<DbErr>);
        pub struct Record { pub id: u32, pub cursor: crate::query::Cursor }
        pub struct Cursor { pub conn: sea_orm::DatabaseConnection }
        pub struct Unreached { pub conn: sea_orm::DatabaseConnection }
    ";

    #[test]
    fn a_driver_type_in_a_reachable_repo_variant_is_found() {
        let service = [source("error.rs", "use rental_repo::RepoError;\npub enum ServiceError { Repo(RepoError) }")];
        let report = check(&service, &[source("repo.rs", REPO)], "rental_repo").unwrap();
        let leaks: Vec<String> = report.leaks.iter().map(|l| format!("{} {}", l.item, l.driver_type)).collect();
        assert_eq!(leaks, ["rental_repo::RepoError::Leaky sea_orm::DbErr"], "private fields are not exposed");
        assert!(report.inspected.contains("rental_repo::DatabaseError"));
    }

    #[test]
    fn reexports_signatures_and_trait_impls_are_followed() {
        let service = [
            source("lib.rs", "pub use rental_repo::Record;"),
            source("svc.rs", "use sea_orm::DbErr as E;\npub fn f(e: E) {}\nimpl From<sqlx::Error> for S {}"),
        ];
        let report = check(&service, &[source("repo.rs", REPO)], "rental_repo").unwrap();
        let leaks: Vec<String> = report.leaks.iter().map(|l| format!("{} {}", l.item, l.driver_type)).collect();
        assert_eq!(
            leaks,
            [
                "rental_repo::Cursor sea_orm::DatabaseConnection",
                "rental_service::f sea_orm::DbErr",
                "rental_service::impl for S sqlx::Error",
            ],
            "Unreached is not reachable, so it is not reported"
        );
    }
}
