//! The seed catalogue (`config/catalogue.toml`): the cooperative's capabilities as written in
//! its founding documents. Every node builds its genesis document from it.

use serde::Deserialize;

use crate::error::CatalogueError;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    pub schema: String,
    #[serde(default, rename = "jurisdiction")]
    pub jurisdictions: Vec<SeedJurisdiction>,
    #[serde(default, rename = "domain")]
    pub domains: Vec<SeedDomain>,
    #[serde(default, rename = "working_group")]
    pub working_groups: Vec<SeedWorkingGroup>,
    #[serde(default, rename = "capability")]
    pub capabilities: Vec<SeedCapability>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedJurisdiction {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedDomain {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedWorkingGroup {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub lead_jurisdiction: String,
    #[serde(default)]
    pub domains: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedCapability {
    pub id: String,
    pub name: String,
    pub domain: String,
    #[serde(default)]
    pub aws_equivalent: String,
    #[serde(default)]
    pub open_source_base: String,
    #[serde(default)]
    pub priority: String,
    #[serde(default)]
    pub effort: String,
    #[serde(default)]
    pub dependencies: Vec<String>,
    #[serde(default)]
    pub working_group: String,
    #[serde(default)]
    pub lead_jurisdiction: String,
    #[serde(default)]
    pub functional_requirements: Vec<String>,
    #[serde(default)]
    pub non_functional_requirements: Vec<String>,
    #[serde(default)]
    pub deliverables: Vec<String>,
    #[serde(default = "proposed")]
    pub status: String,
}

fn proposed() -> String {
    "proposed".into()
}

pub const SEED_SCHEMA: &str = "accord/catalogue-seed/v1";

impl Seed {
    /// Parses and cross-checks a seed catalogue: ids unique, every reference resolves.
    pub fn parse(text: &str, path: &str) -> Result<Seed, CatalogueError> {
        let err = |detail: String| CatalogueError::Seed {
            path: path.to_owned(),
            detail,
        };
        let seed: Seed = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        if seed.schema != SEED_SCHEMA {
            return Err(err(format!(
                "schema is {:?}, expected {SEED_SCHEMA:?}",
                seed.schema
            )));
        }
        let unique = |what: &str, ids: Vec<&str>| -> Result<(), CatalogueError> {
            let mut seen = std::collections::BTreeSet::new();
            for id in ids {
                if !seen.insert(id) {
                    return Err(err(format!("{what} {id} is defined twice")));
                }
            }
            Ok(())
        };
        unique(
            "jurisdiction",
            seed.jurisdictions.iter().map(|j| j.id.as_str()).collect(),
        )?;
        unique(
            "domain",
            seed.domains.iter().map(|d| d.id.as_str()).collect(),
        )?;
        unique(
            "working group",
            seed.working_groups.iter().map(|w| w.id.as_str()).collect(),
        )?;
        unique(
            "capability",
            seed.capabilities.iter().map(|c| c.id.as_str()).collect(),
        )?;
        let has = |list: &[&str], id: &str| id.is_empty() || list.contains(&id);
        let js: Vec<&str> = seed.jurisdictions.iter().map(|j| j.id.as_str()).collect();
        let ds: Vec<&str> = seed.domains.iter().map(|d| d.id.as_str()).collect();
        let ws: Vec<&str> = seed.working_groups.iter().map(|w| w.id.as_str()).collect();
        let cs: Vec<&str> = seed.capabilities.iter().map(|c| c.id.as_str()).collect();
        for w in &seed.working_groups {
            if !has(&js, &w.lead_jurisdiction) || !w.domains.iter().all(|d| has(&ds, d)) {
                return Err(err(format!(
                    "working group {} names an unknown jurisdiction or domain",
                    w.id
                )));
            }
        }
        for c in &seed.capabilities {
            crate::schema::check_capability_id(&c.id).map_err(|e| err(e.to_string()))?;
            if !has(&ds, &c.domain) || c.domain.is_empty() {
                return Err(err(format!("{}: unknown domain {:?}", c.id, c.domain)));
            }
            if !has(&ws, &c.working_group) || !has(&js, &c.lead_jurisdiction) {
                return Err(err(format!(
                    "{}: unknown working group or lead jurisdiction",
                    c.id
                )));
            }
            if let Some(d) = c.dependencies.iter().find(|d| !cs.contains(&d.as_str())) {
                return Err(err(format!("{}: depends on unknown capability {d}", c.id)));
            }
            c.status
                .parse::<crate::schema::Status>()
                .map_err(|e| err(format!("{}: {e}", c.id)))?;
        }
        Ok(seed)
    }
}
