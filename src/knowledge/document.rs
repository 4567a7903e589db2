//! A knowledge-base document as operators send it, checked field by field; HTML bodies are reduced
//! to text (headings kept as Markdown headings so chunking can split on them).

use crate::domain::{check_identifier, InvalidField, UserText};
use serde::{Deserialize, Serialize};

pub const MAX_BODY_CHARS: usize = 200_000;
pub const MAX_TITLE_CHARS: usize = 300;
const MAX_TAGS: usize = 32;
const MAX_TAG_CHARS: usize = 64;
const MAX_URL_CHARS: usize = 2048;

/// The request body of `PUT /admin/kb/documents/{id}` and one entry of an import (with `id`).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct DocumentInput {
    /// Import only; the path names it on `PUT`.
    pub id: Option<String>,
    /// 1–300 characters.
    pub title: Option<String>,
    /// Markdown or plain text (HTML is reduced to text), at most 200,000 characters.
    pub body: Option<String>,
    /// `https` only.
    pub url: Option<String>,
    /// `en`, `fr-CA`, ... chooses stemming and stop words; default `kb.default_locale`.
    pub locale: Option<String>,
    pub tags: Option<Vec<String>>,
}

/// A valid document, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub id: String,
    pub title: String,
    pub body: String,
    pub url: Option<String>,
    pub locale: Option<String>,
    pub tags: Vec<String>,
}

impl DocumentInput {
    /// Checks every field; `prefix` names the document in errors (`documents[3].`).
    pub fn validate(self, id: Option<&str>, prefix: &str) -> Result<Document, InvalidField> {
        let field = |name: &str| format!("{prefix}{name}");
        let id = match id {
            Some(id) => id.to_owned(),
            None => self.id.ok_or_else(|| InvalidField::missing(&field("id")))?,
        };
        check_identifier(&id, &field("id"))?;
        let title = UserText::parse(self.title.as_deref(), &field("title"), MAX_TITLE_CHARS)?.into_string();
        let raw_body = self.body.ok_or_else(|| InvalidField::missing(&field("body")))?;
        if raw_body.chars().count() > MAX_BODY_CHARS {
            let message = format!("`{}` must be at most {MAX_BODY_CHARS} characters", field("body"));
            return Err(InvalidField::new(field("body"), "field_too_long", message));
        }
        let reduced = if looks_like_html(&raw_body) { html_to_text(&raw_body) } else { raw_body };
        let body = UserText::parse(Some(&reduced), &field("body"), MAX_BODY_CHARS)?.into_string();
        let url = self.url.filter(|u| !u.trim().is_empty()).map(|u| check_url(u.trim(), &field("url"))).transpose()?;
        let locale =
            self.locale.filter(|l| !l.trim().is_empty()).map(|l| check_locale(&l, &field("locale"))).transpose()?;
        let tags = check_tags(self.tags.unwrap_or_default(), &field("tags"))?;
        Ok(Document { id, title, body, url, locale, tags })
    }
}

/// Most documents in one import.
pub const MAX_IMPORT_DOCUMENTS: usize = 5_000;

/// Checks every document of an import first: one invalid document (named by index and field)
/// refuses them all. An id given twice is stored once, as its last entry says (upsert order).
pub fn validate_batch(documents: Option<Vec<DocumentInput>>) -> Result<Vec<Document>, InvalidField> {
    let documents = documents.ok_or_else(|| InvalidField::missing("documents"))?;
    if documents.is_empty() || documents.len() > MAX_IMPORT_DOCUMENTS {
        let message = format!("`documents` must have 1 to {MAX_IMPORT_DOCUMENTS} entries");
        return Err(InvalidField::new("documents", "invalid_field", message));
    }
    let mut valid = Vec::with_capacity(documents.len());
    let mut position = std::collections::HashMap::new();
    for (i, input) in documents.into_iter().enumerate() {
        let doc = input.validate(None, &format!("documents[{i}]."))?;
        match position.get(&doc.id) {
            Some(&at) => valid[at] = doc,
            None => {
                position.insert(doc.id.clone(), valid.len());
                valid.push(doc);
            }
        }
    }
    Ok(valid)
}

fn check_url(url: &str, field: &str) -> Result<String, InvalidField> {
    let parsed = reqwest::Url::parse(url).ok().filter(|u| u.scheme() == "https" && u.host_str().is_some());
    if parsed.is_none() || url.len() > MAX_URL_CHARS {
        let message = format!("`{field}` must be an https URL of at most {MAX_URL_CHARS} characters");
        return Err(InvalidField::new(field, "invalid_field", message));
    }
    Ok(url.to_owned())
}

/// A BCP 47-ish tag: `en`, `fr-CA`, `pt_BR`.
fn check_locale(raw: &str, field: &str) -> Result<String, InvalidField> {
    let locale = raw.trim();
    let valid = locale.len() <= 16
        && locale.split(['-', '_']).enumerate().all(|(i, part)| {
            (if i == 0 { (2..=3).contains(&part.len()) } else { (2..=8).contains(&part.len()) })
                && part.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    if !valid {
        return Err(InvalidField::new(
            field,
            "invalid_field",
            format!("`{field}` must be a locale like `en` or `fr-CA`"),
        ));
    }
    Ok(locale.to_owned())
}

fn check_tags(tags: Vec<String>, field: &str) -> Result<Vec<String>, InvalidField> {
    if tags.len() > MAX_TAGS {
        return Err(InvalidField::new(
            field,
            "too_many_entries",
            format!("`{field}` must have at most {MAX_TAGS} tags"),
        ));
    }
    tags.into_iter()
        .enumerate()
        .map(|(i, tag)| Ok(UserText::parse(Some(&tag), &format!("{field}[{i}]"), MAX_TAG_CHARS)?.into_string()))
        .collect()
}

fn looks_like_html(body: &str) -> bool {
    let lowered = body.to_ascii_lowercase();
    ["<p", "<div", "<br", "<h1", "<h2", "<h3", "<ul", "<li", "<html", "<body", "<span", "<table", "<script"].iter().any(
        |tag| lowered.match_indices(tag).any(|(at, _)| lowered[at + tag.len()..].starts_with(['>', ' ', '/', '\n'])),
    )
}

/// Block elements become line breaks and headings Markdown headings; then tags are removed (script
/// and style contents with them) and the common entities decoded.
pub fn html_to_text(html: &str) -> String {
    let mut marked = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        marked.push_str(&rest[..open]);
        let tag_end = rest[open..].find('>').map(|e| open + e + 1).unwrap_or(rest.len());
        let tag = rest[open..tag_end].to_ascii_lowercase();
        let name: String =
            tag.trim_start_matches(['<', '/']).chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        match name.as_str() {
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" if !tag.starts_with("</") => {
                let level = name[1..].parse::<usize>().unwrap_or(2);
                marked.push_str(&format!("\n\n{} ", "#".repeat(level)));
            }
            "p" | "div" | "br" | "li" | "tr" | "ul" | "ol" | "table" | "section" | "article" | "dt" | "dd" | "h1"
            | "h2" | "h3" | "h4" | "h5" | "h6" | "pre" | "blockquote" => {
                marked.push_str("\n\n");
                marked.push_str(&rest[open..tag_end]);
            }
            _ => marked.push_str(&rest[open..tag_end]),
        }
        rest = &rest[tag_end..];
    }
    marked.push_str(rest);
    let text = crate::guard::strip_html(&marked);
    let decoded = decode_entities(&text);
    let mut out = String::with_capacity(decoded.len());
    let mut blank = 0;
    for line in decoded.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(&line);
    }
    out
}

fn decode_entities(text: &str) -> String {
    text.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(title: &str, body: &str) -> DocumentInput {
        DocumentInput { title: Some(title.into()), body: Some(body.into()), ..Default::default() }
    }

    #[test]
    fn fields_are_checked_by_name() {
        let err = input("", "b").validate(Some("a"), "").unwrap_err();
        assert_eq!(err.field, "title");
        let err = input("t", "b").validate(Some("a b"), "").unwrap_err();
        assert_eq!(err.field, "id");
        let mut bad_url = input("t", "b");
        bad_url.url = Some("http://shop.example/returns".into());
        assert_eq!(bad_url.validate(Some("a"), "documents[2].").unwrap_err().field, "documents[2].url");
        let long = "x".repeat(MAX_BODY_CHARS + 1);
        assert_eq!(input("t", &long).validate(Some("a"), "").unwrap_err().code, "field_too_long");
        let mut locale = input("t", "b");
        locale.locale = Some("french!".into());
        assert_eq!(locale.validate(Some("a"), "").unwrap_err().field, "locale");
    }

    #[test]
    fn html_is_reduced_to_text_with_headings() {
        let html = "<h2>Returns</h2><p>Within <b>30</b> days &amp; free.</p><script>alert(1)</script><ul><li>One</li><li>Two</li></ul>";
        let doc = input("Policy", html).validate(Some("p"), "").unwrap();
        assert_eq!(doc.body, "## Returns\n\nWithin 30 days & free.\n\nOne\n\nTwo");
    }

    #[test]
    fn markdown_with_a_less_than_sign_stays_as_written() {
        let doc = input("Sizes", "# Sizes\n\nIf your chest is < 90 cm, take S.").validate(Some("s"), "").unwrap();
        assert_eq!(doc.body, "# Sizes\n\nIf your chest is < 90 cm, take S.");
    }
}
