//! Runbooks, their parameters and their versions.

use crate::block::Block;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The type of a runbook parameter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    #[default]
    String,
    Number,
    Boolean,
}

/// A parameter filled in when a runbook is executed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Param {
    pub name: String,
    #[serde(rename = "type", default)]
    pub param_type: ParamType,
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub description: String,
}

/// The authored content of a runbook: what a create request carries and what a version stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunbookDraft {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub params: Vec<Param>,
    #[serde(default)]
    pub blocks: Vec<Block>,
}

/// An update request: the full content plus the version it was based on. Built by
/// [`crate::validation::parse_update`], which, unlike a create, requires `blocks`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunbookUpdate {
    #[serde(flatten)]
    pub draft: RunbookDraft,
    /// The version the editor started from; a stale one is a conflict.
    pub version: i64,
    /// An optional note stored with the new version.
    pub message: Option<String>,
}

/// A stored runbook at its current version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Runbook {
    pub id: Uuid,
    #[serde(flatten)]
    pub draft: RunbookDraft,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

/// A runbook as listed: everything but parameters and blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunbookSummary {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

/// One entry of a runbook's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub message: String,
}

impl Runbook {
    /// Walks every block, nested ones included, depth first in document order.
    pub fn all_blocks(&self) -> Vec<&Block> {
        self.draft.all_blocks()
    }
}

impl RunbookDraft {
    /// Walks every block, nested ones included, depth first in document order.
    pub fn all_blocks(&self) -> Vec<&Block> {
        fn walk<'a>(blocks: &'a [Block], out: &mut Vec<&'a Block>) {
            for block in blocks {
                out.push(block);
                if let Block::Conditional(conditional) = block {
                    walk(&conditional.then, out);
                    walk(&conditional.otherwise, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.blocks, &mut out);
        out
    }
}
