//! `velochat kb import PATH` and `velochat kb search "question"`, against the configured database,
//! for operators without curl.

use crate::completion::client::http_client;
use crate::config::Settings;
use crate::knowledge::document::{validate_batch, MAX_IMPORT_DOCUMENTS};
use crate::knowledge::embed::Embedder;
use crate::knowledge::{DocumentInput, KnowledgeBase};
use anyhow::{bail, Context};
use std::path::Path;
use std::time::Duration;

/// The knowledge base on the configured store, with embeddings when a model is configured.
async fn open(settings: &Settings) -> anyhow::Result<KnowledgeBase> {
    let durable =
        crate::store::durable::connect(settings.storage.database_url.expose()).await.context("DATABASE_URL")?;
    let kb = &settings.kb;
    let o = &settings.openai;
    let client = http_client(Duration::from_millis(o.connect_timeout_ms), o.h2c, &o.ca_cert)?;
    let embedder = Embedder::from_settings(settings, &client, None);
    Ok(KnowledgeBase::new(kb, durable, embedder.map(std::sync::Arc::new))?)
}

/// Reads documents from a JSON file (`{"documents": [...]}` or an array), a JSON-lines file, or a
/// folder of Markdown files (id = file name, title = first heading).
pub fn read_documents(path: &Path) -> anyhow::Result<Vec<DocumentInput>> {
    if path.is_dir() {
        return markdown_folder(path);
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return serde_json::from_str(trimmed)
            .with_context(|| format!("{}: not a JSON array of documents", path.display()));
    }
    if let Ok(wrapper) = serde_json::from_str::<serde_json::Value>(trimmed) {
        if let Some(documents) = wrapper.get("documents") {
            return serde_json::from_value(documents.clone())
                .with_context(|| format!("{}: `documents` is not a list of documents", path.display()));
        }
    }
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| serde_json::from_str(line).with_context(|| format!("{} line {}", path.display(), n + 1)))
        .collect()
}

fn markdown_folder(dir: &Path) -> anyhow::Result<Vec<DocumentInput>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("md") || e.eq_ignore_ascii_case("markdown")))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("document");
            let id: String = stem
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-') { c } else { '-' })
                .take(128)
                .collect();
            let (title, body) = match text.lines().position(|l| l.trim_start().starts_with("# ")) {
                Some(at) => {
                    let title = text.lines().nth(at).unwrap_or_default().trim_start().trim_start_matches("# ").trim();
                    let body: Vec<&str> = text.lines().enumerate().filter(|(i, _)| *i != at).map(|(_, l)| l).collect();
                    (title.to_owned(), body.join("\n"))
                }
                None => (stem.to_owned(), text.clone()),
            };
            Ok(DocumentInput { id: Some(id), title: Some(title), body: Some(body), ..Default::default() })
        })
        .collect()
}

/// One phase of an import, shown as a bar on a terminal and as plain lines (at most every tenth
/// of the way) when the output is a file or a pipe.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    phase: &'static str,
    last_line: std::sync::atomic::AtomicU64,
}

impl Progress {
    fn new(phase: &'static str, total: u64) -> Self {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template("{prefix:>9} [{bar:40}] {pos}/{len} {elapsed}") {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(phase);
            bar
        });
        // A phase whose size is not known yet (embedding) says so with its first step.
        if bar.is_none() && total > 0 {
            eprintln!("{phase}: 0/{total}");
        }
        Self { bar, phase, last_line: std::sync::atomic::AtomicU64::new(0) }
    }

    fn set(&self, done: u64, total: u64) {
        match &self.bar {
            Some(bar) => {
                bar.set_length(total);
                bar.set_position(done);
            }
            None => {
                let step = (total / 10).max(1);
                let last = self.last_line.load(std::sync::atomic::Ordering::Relaxed);
                if done == total || done >= last + step {
                    self.last_line.store(done, std::sync::atomic::Ordering::Relaxed);
                    eprintln!("{}: {done}/{total}", self.phase);
                }
            }
        }
    }

    fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish();
        }
    }
}

pub async fn import(settings: &Settings, path: &Path) -> anyhow::Result<()> {
    let inputs = read_documents(path)?;
    if inputs.is_empty() {
        bail!("{}: no documents", path.display());
    }
    // Every document is checked before any is stored.
    let parsing = Progress::new("parsing", inputs.len() as u64);
    let mut documents = Vec::with_capacity(inputs.len());
    for batch in inputs.chunks(MAX_IMPORT_DOCUMENTS) {
        let offset = documents.len();
        documents
            .extend(validate_batch(Some(batch.to_vec())).map_err(|e| {
                anyhow::anyhow!("document {}: {}", offset + index_in(&e.field).unwrap_or(0), e.message)
            })?);
        parsing.set(documents.len() as u64, inputs.len() as u64);
    }
    parsing.finish();
    let kb = open(settings).await?;
    let total = documents.len();
    let storing = Progress::new("storing", total as u64);
    let embedding = kb.status().model.is_some().then(|| Progress::new("embedding", 0));
    let (mut version, mut stored) = (0, 0);
    let mut embedded_before = 0;
    while !documents.is_empty() {
        let rest = documents.split_off(documents.len().min(MAX_IMPORT_DOCUMENTS));
        let batch = std::mem::replace(&mut documents, rest);
        let count = batch.len();
        let report = |done: usize, chunks: usize| {
            if let Some(embedding) = &embedding {
                embedding.set((embedded_before + done) as u64, (embedded_before + chunks) as u64);
            }
        };
        let written = kb.write_reporting(batch, &report).await?;
        embedded_before = kb.status().embedded_chunks;
        version = written.version;
        stored += count;
        storing.set(stored as u64, total as u64);
    }
    storing.finish();
    if let Some(embedding) = embedding {
        embedding.finish();
    }
    let status = kb.status();
    println!(
        "imported {total} documents (knowledge base version {version}; {} of {} chunks embedded)",
        status.embedded_chunks, status.chunks
    );
    Ok(())
}

/// `documents[3].title` → 3.
fn index_in(field: &str) -> Option<usize> {
    field.strip_prefix("documents[")?.split(']').next()?.parse().ok()
}

pub async fn search(settings: &Settings, query: &str, k: usize, locale: Option<&str>) -> anyhow::Result<()> {
    let kb = open(settings).await?;
    kb.sync().await?;
    let timeout = Duration::from_millis(settings.kb.embeddings_timeout_ms);
    let passages = kb.search(query, locale, k, timeout).await?;
    if passages.is_empty() {
        println!("no passage passes kb.min_score ({}) for that question", settings.kb.min_score);
    }
    for (rank, p) in passages.iter().enumerate() {
        println!(
            "{}. {:.3}  {}  [{}]{}",
            rank + 1,
            p.score,
            p.title,
            p.id,
            p.url.as_deref().map(|u| format!("  {u}")).unwrap_or_default()
        );
        let preview: String = p.text.chars().take(240).collect();
        println!("   {}\n", preview.replace('\n', " "));
    }
    Ok(())
}
